/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }],
  },
  // Sources import with .js extensions (NodeNext); map them back to the .ts files for ts-jest.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testTimeout: 120000,
  // Each test file runs in its own worker process, each loading the addon (N-API handles it).
  maxWorkers: process.env.CI ? 2 : '50%',
  setupFiles: ['<rootDir>/test/helpers/setup-env.cjs'],
};
