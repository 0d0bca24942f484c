/** Real engines: run by `npm run test:engines` after engines.sh up (see test/integration/with-engines.sh). */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/integration'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  testTimeout: 20 * 60 * 1000,
  maxWorkers: 1,
};
