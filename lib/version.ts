/**
 * The library's version, as recorded in each instance's record (see lib/instance). A constant
 * rather than a read of package.json, so it works the same from ESM, CommonJS and bundles;
 * test/inspection.spec.ts checks that it matches package.json.
 */
export const LIBRARY_VERSION = '0.1.0';
