/** Real engines: run by `npm run test:engines` after engines.sh up (see test/integration/with-engines.sh). */
// As in jest.config.js: the AWS SDK's notice that its 2027 releases need Node 22 is not a test result.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/integration'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  testTimeout: 20 * 60 * 1000,
  maxWorkers: 1,
};
