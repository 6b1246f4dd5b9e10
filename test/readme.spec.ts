/**
 * Documentation that cannot rot: every ```ts block of README.md and sample/README.md is compiled
 * against the library's sources (tsconfig.json maps 'nestjs-redis-lock' to lib/index.ts), as
 * written, or inside one of the preludes below when the README marks it with
 * `<!-- ts-check: prelude=NAME -->` (or `<!-- ts-check: continues -->` to join the block before).
 * A failure names the Markdown file, line and column, and the TypeScript diagnostic.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkMarkdown,
  checkUnits,
  extractTsBlocks,
  readMarkdown,
  toUnits,
  type Prelude,
  type UnitResult,
} from './support/markdown-typecheck.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSCONFIG = path.join(ROOT, 'tsconfig.json');
const FILES = ['README.md', 'sample/README.md'];

/**
 * What a README snippet may take for granted. Everything here is either an import the reader
 * writes anyway, or a `declare` standing for the reader's own code (their services, DTOs and
 * helpers), which the README names but does not define.
 */
const IMPORTS = `
import { Body, Controller, Get, Injectable, Module, Param, Post } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { currentLock, LockModule, LockService, WithLock, type Lock, type LockEvent } from 'nestjs-redis-lock';
`;

/** The reader's own code, which the snippets call but the README does not define. */
const APP_CODE = `
declare function doWork(options: { signal: AbortSignal }): Promise<void>;
declare function refundPayment(id: string, options: { signal: AbortSignal; fence: number }): Promise<void>;
declare function runExport(): Promise<void>;
interface Report { tenant: string }
declare function buildReport(tenant: string): Promise<Report>;
declare function loadPages(tenant: string): Promise<string[]>;
declare function writePage(page: string, options: { fence: number }): Promise<void>;
interface Catalog { items: string[] }
declare class CatalogCache { get(key: string): Promise<Catalog | undefined>; set(key: string, value: Catalog): Promise<void> }
declare function loadCatalog(): Promise<Catalog>;
declare function step1(): Promise<void>;
declare function step2(options?: { fence: number }): Promise<void>;
declare const id: string;
`;

export const PRELUDES: Record<string, Prelude> = {
  /** The usual imports of a module file. */
  imports: { before: IMPORTS },
  /** The reader's own code (declared only); the block brings its own imports. */
  app: { before: APP_CODE },
  /** Statements in an async method of a provider that injected `private readonly locks: LockService`. */
  'in-service': {
    before: `${IMPORTS}${APP_CODE}
@Injectable()
export class ReadmeExample {
  constructor(private readonly locks: LockService) {}

  async example(): Promise<void> {`,
    after: `  }
}`,
  },
  /** Metrics objects of the reader's app (e.g. prom-client), fed by onEvent. */
  metrics: {
    before: `${IMPORTS}
declare const acquireWait: { observe(ms: number): void };
declare const lostLocks: { inc(): void };`,
  },
  // Other libraries, for the "before" half of the migration guides. They are not installed here,
  // so their names are declared with the shapes their READMEs show: this checks our snippet's
  // syntax and its use of Nest and ioredis, not those libraries' types.
  // redlock 5.0.0-beta.2 is installed, but its package.json "exports" has no "types", so under
  // NodeNext \`import Redlock from 'redlock'\` is untyped: take its own .d.ts by path instead.
  'node-redlock': {
    before: `${APP_CODE}
import type RedlockClass from './node_modules/redlock/dist/index.js';
import { Redis } from 'ioredis';
declare const Redlock: typeof RedlockClass;`,
  },
  'anchan828-nest-redlock': {
    before: `import { Module, type DynamicModule } from '@nestjs/common';
import { Redis } from 'ioredis';
declare const RedlockModule: {
  register(options: { clients: Redis[]; settings?: { retryCount?: number }; duration?: number }): DynamicModule;
};
declare function Redlock<T extends (...args: any[]) => unknown>(
  key: (target: object, ...args: Parameters<T>) => string | string[],
): MethodDecorator;`,
  },
  'nestjs-redlock-universal': {
    before: `import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { Redis } from 'ioredis';
declare const RedlockModule: { forRoot(options: { nodes: unknown[]; defaultTtl?: number }): DynamicModule };
declare class IoredisAdapter { constructor(client: Redis) }
declare function Redlock(options: { key: (...args: any[]) => string }): MethodDecorator;
interface RedlockHandle { value: string }
declare class RedlockService {
  using<T>(key: string, fn: () => Promise<T>): Promise<T>;
  acquire(key: string): Promise<RedlockHandle>;
  release(key: string, handle: RedlockHandle): Promise<void>;
}`,
  },
};

function failures(results: UnitResult[]): string[] {
  return results.flatMap((r) => r.diagnostics.map((d) => `${r.unit.name}: ${d}`));
}

describe('README TypeScript blocks', () => {
  const files = readMarkdown(ROOT, FILES);
  const results = checkMarkdown(files, { tsconfig: TSCONFIG, preludes: PRELUDES });

  it('README.md has TypeScript blocks to check (the extractor finds them)', () => {
    expect(results.filter((r) => r.unit.blocks[0]!.file === 'README.md').length).toBeGreaterThanOrEqual(10);
  });

  it.each(results.map((r) => [r.unit.name, r] as const))('%s compiles', (_name, result) => {
    expect(result.diagnostics).toEqual([]);
  });
});

describe('the README checker itself', () => {
  // Markdown fed to the checker; line numbers below are lines of these texts.
  const samples: Record<string, string> = {
    'used-before-declaration.md': [
      '# Broken', //                                               1
      '', //                                                       2
      '```ts', //                                                  3
      "import { Module } from '@nestjs/common';", //               4
      '@Module({ providers: [Orders] })', //                       5
      'export class AppModule {}', //                              6
      'export class Orders {}', //                                 7
      '```', //                                                    8
    ].join('\n'),
    'continued.md': [
      '```ts', //                                                  1
      'const total: number = 1;', //                              2
      '```', //                                                    3
      'Some prose.', //                                            4
      '<!-- ts-check: continues -->', //                           5
      '```ts', //                                                  6
      'const sum: number = total + 1;', //                         7
      "const wrong: string = sum;", //                             8
      '```', //                                                    9
    ].join('\n'),
    'in-prelude.md': [
      '<!-- ts-check: prelude=in-service -->', //                  1
      '```ts', //                                                  2
      "const lock = await this.locks.acquire('k');", //            3
      'await lock.release();', //                                  4
      'lock.nope();', //                                           5
      '```', //                                                    6
    ].join('\n'),
    'with-lock-types.md': [
      '<!-- ts-check: prelude=imports -->', //                     1
      '```ts', //                                                  2
      'export class Sync {', //                                    3
      "  @WithLock('a:<id>')", //                                  4
      '  pay(id: string): number { return 1; }', //                5
      '}', //                                                      6
      '```', //                                                    7
      '<!-- ts-check: prelude=imports -->', //                     8
      '```ts', //                                                  9
      'export class Skip {', //                                    10
      "  @WithLock('a:<id>', { wait: 0, onBusy: 'skip' })", //     11
      '  async pay(id: string): Promise<number> { return 1; }', // 12
      '}', //                                                      13
      '```', //                                                    14
      '<!-- ts-check: prelude=imports -->', //                     15
      '```ts', //                                                  16
      'export class Fine {', //                                    17
      "  @WithLock('a:<id>', { wait: 0, onBusy: 'skip' })", //     18
      '  async pay(id: string): Promise<number | undefined> { return 1; }', // 19
      "  @WithLock('b:<id>')", //                                  20
      '  async charge(id: string): Promise<number> { return 1; }', // 21
      "  @WithLock('c:<id>')", //                                  22
      "  watch(id: string): Observable<string> { return of(id); }", // 23
      '}', //                                                      24
      "import { Observable, of } from 'rxjs';", //                 25
      '```', //                                                    26
    ].join('\n'),
    'not-typescript.md': ['```ts', '@WithLock("x")', 'await foo();', '```'].join('\n'),
  };
  let results: UnitResult[];

  beforeAll(() => {
    results = checkMarkdown(
      Object.entries(samples).map(([file, text]) => ({ file, text })),
      { tsconfig: TSCONFIG, preludes: PRELUDES },
    );
  });
  const of = (file: string) => results.filter((r) => r.unit.blocks[0]!.file === file);

  it('reports a class used before its declaration with its Markdown line and TS2449', () => {
    const [result] = of('used-before-declaration.md');
    expect(result!.diagnostics).toEqual([
      expect.stringMatching(/^used-before-declaration\.md:5:23 TS2449: Class 'Orders' used before its declaration\.$/),
    ]);
  });

  it('compiles a "continues" block together with the block before it, and maps lines in both', () => {
    const units = of('continued.md');
    expect(units).toHaveLength(1);
    expect(units[0]!.unit.name).toBe('continued.md:2+7 ((top))');
    // `total` from the first block resolves; the one error is in the second block, on its own line.
    expect(units[0]!.diagnostics).toEqual([
      expect.stringMatching(/^continued\.md:8:7 TS2322: Type 'number' is not assignable to type 'string'\.$/),
    ]);
  });

  it('maps a diagnostic inside a prelude-wrapped block to the Markdown line', () => {
    expect(of('in-prelude.md')[0]!.diagnostics).toEqual([
      expect.stringMatching(/^in-prelude\.md:5:6 TS2339: Property 'nope' does not exist on type 'Lock'\.$/),
    ]);
  });

  it('@WithLock on a method that does not return a Promise is a compile error with a hint', () => {
    expect(of('with-lock-types.md')[0]!.diagnostics).toEqual([
      expect.stringMatching(/^with-lock-types\.md:4:4 TS1241: .*'@WithLock makes the method return a Promise: declare it async/s),
    ]);
  });

  it("@WithLock with onBusy: 'skip' needs a result type that admits undefined", () => {
    expect(of('with-lock-types.md')[1]!.diagnostics).toEqual([
      expect.stringMatching(/^with-lock-types\.md:11:4 TS1241: .*onBusy: 'skip' resolves a skipped call to undefined/s),
    ]);
  });

  it('@WithLock accepts async methods, Promise<T | undefined> with skip, and declared Observables', () => {
    expect(of('with-lock-types.md')[2]!.diagnostics).toEqual([]);
  });

  it('reports a block that crashes the TypeScript parser instead of failing the whole run', () => {
    expect(of('not-typescript.md')[0]!.diagnostics).toEqual([
      expect.stringMatching(/^not-typescript\.md:2:1 (TypeScript's parser crashed|TS\d+)/),
    ]);
  });

  it('refuses unknown directives and preludes, and a "continues" with nothing before it', () => {
    expect(() => extractTsBlocks('<!-- ts-check: prelud=x -->\n```ts\n1;\n```', 'a.md')).toThrow(
      /a\.md:1: unknown ts-check directive "prelud=x"/,
    );
    expect(() => toUnits(extractTsBlocks('<!-- ts-check: continues -->\n```ts\n1;\n```', 'b.md'))).toThrow(
      /b\.md:3: "ts-check: continues", but no ```ts block comes before it/,
    );
    const units = toUnits(extractTsBlocks('<!-- ts-check: prelude=nope -->\n```ts\n1;\n```', 'c.md'));
    expect(() => checkUnits(units, { tsconfig: TSCONFIG, preludes: PRELUDES })).toThrow(/unknown prelude "nope"/);
    expect(() => extractTsBlocks('<!-- ts-check: prelude=imports -->\n```bash\nls\n```', 'd.md')).toThrow(
      /d\.md:2: a ts-check directive stands before a ```bash block/,
    );
  });
});
