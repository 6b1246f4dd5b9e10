// Long safety soaks (npm run check:safety): only test/safety/*.safety.ts, never part of `npm test`.
import base from './jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  testMatch: ['**/test/safety/*.safety.ts'],
  testTimeout: 24 * 60 * 60 * 1000,
};
