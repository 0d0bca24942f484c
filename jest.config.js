// The AWS SDK (a dev dependency: the handler's tests) warns once per process on Node < 22 that its releases after early 2027
// will need Node 22. README states the supported Node versions; in test output the warning only reads as a failure. This
// is the SDK's own switch for it (AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED); jest's workers inherit it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/test/integration/'],
  // Type checking aws-cdk-lib inside ts-jest is slow; `npm run typecheck` does it once for the whole tree.
  transform: { '^.+\\.ts$': 'ts-jest' },
  // A guard against hangs, not a speed limit: some tests run bash or synthesize stacks, and shared machines are slow at times.
  testTimeout: 30_000,
};
