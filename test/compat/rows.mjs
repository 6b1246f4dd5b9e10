/**
 * The consumer apps of the compatibility matrix. Each row is what `nest new` generated for that
 * Nest version (tsconfig, jest config and test script copied verbatim from @nestjs/schematics,
 * with `strict` answered "no", the default), plus the package's optional peers (@nestjs/terminus,
 * ioredis). Only the ESM row deviates from a scaffold, because no `nest new` makes an ESM app; its
 * changes are listed there.
 */

const nest11Jest = {
  // @nestjs/schematics 11.x application/files/ts/package.json "jest" (identical in 11.0.5 and 11.1.0)
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: 'src',
  testRegex: '.*\\.spec\\.ts$',
  transform: { '^.+\\.(t|j)s$': 'ts-jest' },
  collectCoverageFrom: ['**/*.(t|j)s'],
  coverageDirectory: '../coverage',
  testEnvironment: 'node',
};

const nest11Build = { extends: './tsconfig.json', exclude: ['node_modules', 'test', 'dist', '**/*spec.ts'] };

const nest12Build = {
  extends: './tsconfig.json',
  compilerOptions: { rootDir: './src' },
  include: ['src'],
  exclude: ['node_modules', 'test', 'dist', '**/*spec.ts'],
};

const nest12Tsconfig = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    resolvePackageJsonExports: true,
    esModuleInterop: true,
    isolatedModules: true,
    declaration: true,
    removeComments: true,
    emitDecoratorMetadata: true,
    experimentalDecorators: true,
    allowSyntheticDefaultImports: true,
    target: 'ES2023',
    types: ['node', 'jest'],
    sourceMap: true,
    outDir: './dist',
    rootDir: '.',
    incremental: true,
    skipLibCheck: true,
    strict: false,
    strictPropertyInitialization: false,
  },
};

// @nestjs/schematics 12.0.6 application/files/ts/jest.config.ts, verbatim (specFileSuffix "spec").
const nest12JestConfigTs = `import type { Config } from 'jest';
import { pathsToModuleNameMapper } from 'ts-jest';
import ts from 'typescript';

// Path aliases (e.g. the ones added by \`nest g library\`) live in tsconfig.json,
// so they are read from there instead of being duplicated here.
const { config: tsconfig } = ts.readConfigFile(
  './tsconfig.json',
  ts.sys.readFile,
);
const paths = tsconfig?.compilerOptions?.paths ?? {};

const config: Config = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: '.',
  testRegex: '.*\\\\.spec\\\\.ts$',
  transform: {
    '^.+\\\\.(t|j)s$': 'ts-jest',
  },
  moduleNameMapper: pathsToModuleNameMapper(paths, { prefix: '<rootDir>/' }),
  collectCoverageFrom: [
    'src/**/*.(t|j)s',
    'libs/**/*.(t|j)s',
    'apps/**/*.(t|j)s',
  ],
  coverageDirectory: './coverage',
  testEnvironment: 'node',
};

export default config;
`;

const nest12TestScript = 'node --experimental-vm-modules ./node_modules/jest/bin/jest.js';

const nest12Deps = {
  '@nestjs/common': '^12.0.1',
  '@nestjs/core': '^12.0.1',
  '@nestjs/platform-express': '^12.0.1',
  '@nestjs/terminus': '^12.0.0',
  '@nestjs/testing': '^12.0.1',
  'reflect-metadata': '^0.2.2',
  rxjs: '^7.8.1',
  ioredis: '^6.0.0',
  '@types/express': '^5.0.0',
  '@types/jest': '^30.0.0',
  '@types/node': '^24.0.0',
  jest: '^30.0.0',
  'ts-jest': '^29.4.0',
  'ts-node': '^10.9.2',
  typescript: '^6.0.2',
};

export const rows = [
  {
    name: 'nest11-cjs-node10',
    about: 'Nest 11, `nest new` with @nestjs/schematics <= 11.0.6: module commonjs (node10 resolution), jest 29 + ts-jest 29, ioredis 5',
    ext: '',
    packageJson: { scripts: { test: 'jest' }, jest: nest11Jest },
    files: {
      // @nestjs/schematics 11.0.5 application/files/ts/tsconfig.json
      'tsconfig.json': {
        compilerOptions: {
          module: 'commonjs',
          declaration: true,
          removeComments: true,
          emitDecoratorMetadata: true,
          experimentalDecorators: true,
          allowSyntheticDefaultImports: true,
          target: 'ES2023',
          sourceMap: true,
          outDir: './dist',
          baseUrl: './',
          incremental: true,
          skipLibCheck: true,
          strictNullChecks: true,
          forceConsistentCasingInFileNames: true,
          noImplicitAny: false,
          strictBindCallApply: false,
          noFallthroughCasesInSwitch: false,
        },
      },
      'tsconfig.build.json': nest11Build,
    },
    deps: {
      '@nestjs/common': '^11.0.1',
      '@nestjs/core': '^11.0.1',
      '@nestjs/platform-express': '^11.0.1',
      '@nestjs/terminus': '^11.0.0',
      '@nestjs/testing': '^11.0.1',
      'reflect-metadata': '^0.2.2',
      rxjs: '^7.8.1',
      ioredis: '^5.4.0',
      '@types/express': '^5.0.0',
      '@types/jest': '^29.5.14',
      '@types/node': '^22.10.7',
      jest: '^29.7.0',
      'ts-jest': '^29.2.5',
      typescript: '^5.7.3',
    },
  },
  {
    name: 'nest11-nodenext-ts5.7',
    about: 'Nest 11, `nest new` with @nestjs/schematics >= 11.0.7: module/moduleResolution nodenext (a CommonJS app), TypeScript pinned to 5.7, jest 30 + ts-jest 29, ioredis 5',
    ext: '',
    packageJson: { scripts: { test: 'jest' }, jest: nest11Jest },
    files: {
      // @nestjs/schematics 11.1.0 application/files/ts/tsconfig.json
      'tsconfig.json': {
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          resolvePackageJsonExports: true,
          esModuleInterop: true,
          isolatedModules: true,
          declaration: true,
          removeComments: true,
          emitDecoratorMetadata: true,
          experimentalDecorators: true,
          allowSyntheticDefaultImports: true,
          target: 'ES2023',
          sourceMap: true,
          outDir: './dist',
          baseUrl: './',
          incremental: true,
          skipLibCheck: true,
          strictNullChecks: true,
          forceConsistentCasingInFileNames: true,
          noImplicitAny: false,
          strictBindCallApply: false,
          noFallthroughCasesInSwitch: false,
        },
      },
      'tsconfig.build.json': nest11Build,
    },
    deps: {
      '@nestjs/common': '^11.0.1',
      '@nestjs/core': '^11.0.1',
      '@nestjs/platform-express': '^11.0.1',
      '@nestjs/terminus': '^11.0.0',
      '@nestjs/testing': '^11.0.1',
      'reflect-metadata': '^0.2.2',
      rxjs: '^7.8.1',
      ioredis: '^5.4.0',
      '@types/express': '^5.0.0',
      '@types/jest': '^30.0.0',
      '@types/node': '^24.0.0',
      jest: '^30.0.0',
      'ts-jest': '^29.2.5',
      typescript: '~5.7.3',
    },
  },
  {
    name: 'nest12-scaffold',
    about: 'Nest 12, `nest new` with @nestjs/schematics 12.0.6 as generated: a CommonJS app (nodenext, no "type") over ESM-only Nest 12, TypeScript 6, jest 30 via jest.config.ts, ioredis 6',
    ext: '',
    packageJson: { scripts: { test: nest12TestScript } },
    // The scaffold's jest loads this CommonJS app's imports with require(); @nestjs/testing 12 is
    // ESM-only, and jest 30 can require() ESM only on Node >= 24.9. On older Node the step must fail
    // exactly there (at @nestjs/, not at this package); the matrix shows it as "upstream".
    jestNeedsNode: { version: '24.9.0', failure: /Must use import to load ES Module: \S*node_modules\/@nestjs\// },
    files: {
      'tsconfig.json': nest12Tsconfig,
      'tsconfig.build.json': nest12Build,
      'jest.config.ts': nest12JestConfigTs,
    },
    deps: nest12Deps,
  },
  {
    name: 'nest12-esm',
    about: 'Nest 12 as an ESM app ("type": "module", relative imports with .js), ioredis 6, jest 30 in ESM mode (ts-jest useESM)',
    ext: '.js',
    // Changes from the 12.0.6 scaffold, all needed for ESM itself, none for this package:
    // "type": "module"; jest.config.mjs (jest.config.ts cannot be loaded by ts-node in a "type":
    // "module" app) with ts-jest's documented ESM settings (useESM, extensionsToTreatAsEsm, and a
    // moduleNameMapper that strips the .js of relative imports).
    packageJson: { type: 'module', scripts: { test: nest12TestScript } },
    files: {
      'tsconfig.json': nest12Tsconfig,
      'tsconfig.build.json': nest12Build,
      'jest.config.mjs': `export default {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: '.',
  testRegex: '.*\\\\.spec\\\\.ts$',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\\\.(t|j)s$': ['ts-jest', { useESM: true }],
  },
  moduleNameMapper: { '^(\\\\.{1,2}/.*)\\\\.js$': '$1' },
  testEnvironment: 'node',
};
`,
    },
    deps: nest12Deps,
  },
];
