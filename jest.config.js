/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.spec.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  // TypeScript sources win over any stray compiled .js beside them.
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  moduleNameMapper: {
    // Sources import './x.js' (NodeNext ESM); jest resolves the .ts file behind it.
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  // Once per run: redis-server, redis-cli and openssl are found or installed (test/support/provision.ts).
  globalSetup: '<rootDir>/test/support/provision.ts',
  testTimeout: 60_000,
  // Most suites wait on Redis and timers, not the CPU: two workers halve the run on a 2-core machine.
  maxWorkers: 2,
  // A failed test can leave a Redis client reconnecting to a stopped server; never let that hang CI.
  forceExit: true,
};
