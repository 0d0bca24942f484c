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
