/**
 * "Faults, load and bad input" → "Bad input": every public entry point, fed bad values, against a
 * real redis-server. Bad values fail with the documented error class and a message that names the
 * option / describes the value; values that merely look odd (glob characters, braces, newlines,
 * emoji, internal-looking suffixes) are ordinary keys that must work. At the end nothing is left
 * locked in Redis, and owner tokens never reach the logs.
 */
import { jest } from '@jest/globals';
import { Injectable, Logger, Module, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { lastValueFrom, Observable, of } from 'rxjs';
import {
  Lock,
  LockConfigError,
  LockKeyError,
  LockLostError,
  LockModule,
  LockNotAcquiredError,
  LockService,
  MAX_KEY_LENGTH,
  WithLock,
  type LockModuleOptions,
} from '../lib/index.js';
import { lockKeyOf } from '../lib/stores/redis.store.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/**
 * Calls `call`, requires that it does not throw synchronously and that it returns a promise that
 * rejects, and returns the rejection reason. A Lock it resolved to by mistake is released.
 */
async function rejectionOf(call: () => unknown): Promise<unknown> {
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    throw new Error(`threw synchronously instead of returning a rejected promise: ${String(error)}`);
  }
  expect(result).toBeInstanceOf(Promise);
  let value: unknown;
  try {
    value = await result;
  } catch (error) {
    return error;
  }
  if (value instanceof Lock) await value.release();
  throw new Error(`resolved (to ${String(value)}) but should have rejected`);
}

/** The error a class definition (decorators run) throws, or a failure if it defines fine. */
function definitionError(define: () => unknown): unknown {
  try {
    define();
  } catch (error) {
    return error;
  }
  throw new Error('the class was defined without error but should have failed');
}

/** Boots an app and returns the error its bootstrap threw. */
async function bootstrapError(boot: () => Promise<{ close(): Promise<void> }>): Promise<unknown> {
  try {
    const app = await boot();
    await app.close();
  } catch (error) {
    return error;
  }
  throw new Error('bootstrap succeeded but should have failed');
}

/** Lock keys (not fence counters nor self-expiring wait markers) present in Redis under `lock:`. */
async function lockKeysLeft(redis: Redis): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', 'lock:*', 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.filter((key) => !key.endsWith(':fence') && !key.endsWith(':wanted') && !key.startsWith('lock:instance:') && key !== 'lock:fences').sort();
}

/** Collects everything the Nest logger is asked to print, at any level. */
class CollectingLogger implements LoggerService {
  readonly lines: string[] = [];
  private add(level: string, message: unknown, params: unknown[]): void {
    this.lines.push(`${level} ${[message, ...params].map((part) => (typeof part === 'string' ? part : safeJson(part))).join(' ')}`);
  }
  log(message: unknown, ...params: unknown[]): void {
    this.add('log', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.add('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.add('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.add('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.add('verbose', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.add('fatal', message, params);
  }
}

function safeJson(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message} ${value.stack ?? ''}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------
// A provider with @WithLock methods, for call-time bad values
// ---------------------------------------------------------------------------------------------------------

@Injectable()
class BadArgs {
  ran: string[] = [];

  @WithLock('bad:<id>', { wait: 0 })
  async byName(id: unknown): Promise<unknown> {
    this.ran.push('byName');
    return id;
  }

  /** A synchronous method: still rejects, never throws synchronously. */
  // @ts-expect-error A sync method under @WithLock does not type-check (it returns a Promise); kept to test untyped callers.
  @WithLock('bad:<0>', { wait: 0 })
  syncByIndex(id: unknown): unknown {
    this.ran.push('syncByIndex');
    return id;
  }

  @WithLock('bad:<dto.id>', { wait: 0 })
  async byPath(dto: unknown): Promise<unknown> {
    this.ran.push('byPath');
    return dto;
  }

  @WithLock((key: unknown) => key as string, { wait: 0 })
  async byFunction(key: unknown): Promise<unknown> {
    this.ran.push('byFunction');
    return key;
  }

  @WithLock('bad:<id>', { wait: 0 })
  stream(id: unknown): Observable<unknown> {
    this.ran.push('stream');
    return of(id);
  }
}

/** Not created by Nest, so not bound to any LockService. */
class Unbound {
  @WithLock('unbound:<id>')
  async run(id: string): Promise<string> {
    return id;
  }
}

// ---------------------------------------------------------------------------------------------------------

describe('bad input', () => {
  let server: RedisServer;
  let redis: Redis;
  let main: LockApp;
  /** Another app in the same process: its own LockService and connections. */
  let other: LockApp;
  /** Polls almost never: a waiter there gets a lock only through the release notification. */
  let slowPoll: LockApp;
  let locks: LockService;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = server.client();
    main = await startLockApp({ redis: server.url }, { providers: [BadArgs] });
    other = await startLockApp({ redis: server.url });
    slowPoll = await startLockApp({ redis: server.url, pollInterval: 60_000 });
    locks = main.locks;
  });
  afterAll(async () => {
    await main?.close();
    await other?.close();
    await slowPoll?.close();
    await redis?.quit();
    await stopAllRedisServers();
  });

  // -------------------------------------------------------------------------------------------------------
  describe('keys', () => {
    const tooLong = 'k'.repeat(MAX_KEY_LENGTH + 1);
    /** [name, value, message for acquire/tryAcquire/withLock, message for isLocked (one key only)] */
    const badKeys: Array<[string, unknown, RegExp, RegExp]> = [
      ['empty string', '', /non-empty string, got ""/, /non-empty string, got ""/],
      ['number', 42, /got 42/, /got 42/],
      ['null', null, /got null/, /got null/],
      ['undefined', undefined, /got undefined/, /got undefined/],
      ['plain object', { id: 1 }, /got object/, /got object/],
      ['symbol', Symbol('k'), /got Symbol\(k\)/, /got Symbol\(k\)/],
      ['boxed String', new String('a'), /got String instance/, /got String instance/],
      ['Set of keys', new Set(['a']), /got Set instance/, /got Set instance/],
      ['function', () => 'a', /got function/, /got function/],
      ['empty array', [], /at least one lock key.*empty array/i, /got array\(0\)/],
      ['array with an empty string', ['ok:1', ''], /got ""/, /got array\(2\)/],
      ['array with a number', ['ok:1', 7], /got 7/, /got array\(2\)/],
      ['array with null', ['ok:1', null], /got null/, /got array\(2\)/],
      ['array with a nested array', ['ok:1', ['ok:2']], /got array\(1\)/, /got array\(2\)/],
      // eslint-disable-next-line no-sparse-arrays
      ['sparse array (hole)', [, 'ok:1'], /got undefined/, /got array\(2\)/],
      ['array with a too-long key', ['ok:1', tooLong], /1025 characters long \(limit 1024\).*"kkk/, /got array\(2\)/],
      ['too long key', tooLong, /1025 characters long \(limit 1024\): "kkkk/, /1025 characters long \(limit 1024\)/],
      // 'order:😀'.slice(0, 7): a lone surrogate has no UTF-8 form; ioredis sends U+FFFD instead, so
      // distinct keys ('x\uD83D', 'x\uD83E', 'x\uFFFD') would silently share one Redis key.
      ['ill-formed UTF-16 (lone surrogate)', 'order:😀'.slice(0, 7), /unicode|surrogate|well-formed/i, /unicode|surrogate|well-formed/i],
    ];

    let fnCalls = 0;
    const entryPoints: Array<[string, (key: unknown) => unknown]> = [
      ['acquire', (key) => locks.acquire(key as string, { wait: 0 })],
      ['tryAcquire', (key) => locks.tryAcquire(key as string)],
      ['withLock', (key) => locks.withLock(key as string, () => void fnCalls++, { wait: 0 })],
      ['isLocked', (key) => locks.isLocked(key as string)],
    ];
    const table = entryPoints.flatMap(([entry, call]) =>
      badKeys.map(([name, value, message, isLockedMessage]) => [entry, name, call, value, entry === 'isLocked' ? isLockedMessage : message] as const),
    );

    it.each(table)('%s(%s) rejects with LockKeyError describing the value', async (_entry, _name, call, value, message) => {
      const before = fnCalls;
      const error = await rejectionOf(() => call(value));
      expect(error).toBeInstanceOf(LockKeyError);
      expect((error as Error).message).toMatch(message);
      expect(fnCalls).toBe(before);
    });

    /** Ordinary keys, however odd they look. */
    const allowed: Array<[string, string]> = [
      ['newline inside', 'line1\nline2'],
      ['CR LF', 'a\r\nb'],
      ['tab and NUL', 'a\tb\0c'],
      ['glob star', 'orders:*'],
      ['glob question mark', 'order:?'],
      ['glob bracket', 'order:[a-z]'],
      ['lone bracket', '['],
      ['spaces', '  spaced key  '],
      ['a single space', ' '],
      ['unicode', 'ünïcödé:中文:ключ'],
      ['emoji', 'emoji:😀🔒👩‍👩‍👧'],
      ['exactly MAX_KEY_LENGTH', 'm'.repeat(MAX_KEY_LENGTH)],
      ['MAX_KEY_LENGTH of emoji code units', '😀'.repeat(MAX_KEY_LENGTH / 2)],
      ['hash tag', '{tenant}:order'],
      ['hash tag in the middle', 'a{b}c'],
      ['open brace only', '{'],
      ['close brace only', '}'],
      ['empty braces', '{}'],
      ['reversed braces', '}{'],
      ['quotes and backslash', `"q" 'q' \\`],
      ['printf-like', '%s %d %o %%'],
      ['__proto__', '__proto__'],
      ['constructor', 'constructor'],
      ['hasOwnProperty', 'hasOwnProperty'],
      ['angle brackets', '<id>'],
    ];

    it.each(allowed)('allows a key with %s: acquire/isLocked/release and withLock round trip', async (_name, key) => {
      const lock = await locks.acquire(key, { wait: 0 });
      try {
        expect(lock.keys).toEqual([key]);
        expect(await locks.isLocked(key)).toBe(true);
        expect(await other.locks.isLocked(key)).toBe(true);
        expect(ownerOf(await redis.get(lockKeyOf('lock:', key)))).toBe(lock.token);
        expect(await other.locks.tryAcquire(key)).toBeNull();
        expect(Object.keys(lock.fences)).toEqual([key]);
        expect(lock.fences[key]).toBe(lock.fence);
      } finally {
        await lock.release();
      }
      expect(await locks.isLocked(key)).toBe(false);
      const result = await locks.withLock(key, async (held) => [held.keys[0], await other.locks.isLocked(key)], { wait: 0 });
      expect(result).toEqual([key, true]);
      expect(await locks.isLocked(key)).toBe(false);
    });

    it.each(allowed)('a waiter for a key with %s is woken by the release notification itself', async (_name, key) => {
      const holder = await other.locks.acquire(key, { wait: 0 });
      const waiting = slowPoll.locks.acquire(key, { wait: 8_000 });
      await eventually(() => slowPoll.locks.leaseStats.waiters === 1, 5_000, 'the waiter to wait');
      await holder.release();
      // The busy lease (30 s) and pollInterval (60 s) both outlast `wait`: only the notification can wake it.
      const next = await waiting;
      expect(next.keys).toEqual([key]);
      expect(next.fence).toBeGreaterThan(holder.fence);
      await next.release();
      expect(await locks.isLocked(key)).toBe(false);
    });

    it('allows several odd keys at once, and a duplicate counts once', async () => {
      const keys = ['multi:*', 'multi:{x}', 'constructor', 'multi\nline', 'multi:*'];
      const lock = await locks.acquire(keys, { wait: 0 });
      try {
        expect(lock.keys).toEqual(['multi:*', 'multi:{x}', 'constructor', 'multi\nline']);
        for (const key of lock.keys) {
          expect(await other.locks.isLocked(key)).toBe(true);
          expect(ownerOf(await redis.get(lockKeyOf('lock:', key)))).toBe(lock.token);
          expect(Object.prototype.hasOwnProperty.call(lock.fences, key)).toBe(true);
          expect(typeof lock.fences[key]).toBe('number');
        }
        expect(Object.keys(lock.fences).sort()).toEqual([...lock.keys].sort());
      } finally {
        await lock.release();
      }
      for (const key of keys) expect(await locks.isLocked(key)).toBe(false);
    });

    it('a key equal to another key plus an internal suffix never collides with its fence/queue/marker keys', async () => {
      const base = 'coll';
      const first = await locks.acquire(base, { wait: 0 });
      const firstFence = first.fence;
      const lookalikes = [
        'coll:fence',
        'coll}:fence',
        'coll:queue',
        'coll}:queue',
        'coll:waiting',
        'coll}:waiting',
        'coll:wanted',
        'coll}:wanted',
        'coll}',
        '{coll}',
        '{coll',
        'coll:fence}',
      ];
      // Held all at once, next to `coll`.
      const held = await Promise.all(lookalikes.map((key) => other.locks.tryAcquire(key)));
      try {
        held.forEach((lock, i) => {
          expect([lookalikes[i], lock]).toEqual([lookalikes[i], expect.any(Lock)]);
          // Its own lock, not `coll`'s (fences come from the prefix's shared counter: they only grow).
          expect([lookalikes[i], lock!.fence > first.fence]).toEqual([lookalikes[i], true]);
        });
        expect(ownerOf(await redis.get('lock:{coll}'))).toBe(first.token);
        expect(await other.locks.tryAcquire(base)).toBeNull();
        for (const key of lookalikes) expect([key, await locks.isLocked(key)]).toEqual([key, true]);
        expect(first.signal.aborted).toBe(false);
        await first.extend();
        await first.release();
        // The lookalikes are still held by their owner; `coll` is free, and its fence moves on.
        for (const key of lookalikes) expect([key, await locks.isLocked(key)]).toEqual([key, true]);
        const again = await other.locks.acquire(base, { wait: 0 });
        expect(again.fence).toBeGreaterThan(firstFence);
        await again.release();
      } finally {
        await Promise.all(held.map((lock) => lock?.release()));
      }
      for (const key of [base, ...lookalikes]) expect([key, await locks.isLocked(key)]).toEqual([key, false]);
    });

    it('fair mode: a waiter queued on a key is unaffected by keys named like its queue', async () => {
      const holder = await locks.acquire('fq', { fair: true, wait: 0 });
      const waiting = other.locks.acquire('fq', { fair: true, wait: 15_000 });
      await eventually(() => other.locks.leaseStats.waiters === 1, 10_000, 'the fair waiter to queue');
      const lookalikes = await Promise.all(['fq:queue', 'fq}:queue', 'fq:waiting', 'fq}:waiting'].map((key) => locks.tryAcquire(key)));
      expect(lookalikes.every((lock) => lock instanceof Lock)).toBe(true);
      await holder.release();
      const next = await waiting;
      expect(next.fence).toBeGreaterThan(holder.fence);
      await next.release();
      await Promise.all(lookalikes.map((lock) => lock!.release()));
      expect(await locks.isLocked('fq')).toBe(false);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('@WithLock templates at class definition', () => {
    const templates: Array<[string, () => unknown, RegExp]> = [
      [
        'unknown parameter',
        () => {
          class Templates {
            @WithLock('order:<nope>')
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /@WithLock\('order:<nope>'\) on Templates\.m: no parameter named "nope"; parameters are \(id\)/,
      ],
      [
        'empty placeholder <>',
        () => {
          class Templates {
            @WithLock('order:<>')
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /'order:<>'.*empty placeholder "<>" at position 6/,
      ],
      [
        'unclosed <id',
        () => {
          class Templates {
            @WithLock('order:<id')
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /'order:<id'.*"<" at position 6 without a closing ">"/,
      ],
      [
        'unopened id>',
        () => {
          class Templates {
            @WithLock('order:id>')
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /'order:id>'.*">" at position 8 without an opening "<"/,
      ],
      [
        'nested <<id>>',
        () => {
          class Templates {
            @WithLock('order:<<id>>')
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /'order:<<id>>'.*placeholders cannot be nested/,
      ],
      [
        '__proto__ path',
        () => {
          class Templates {
            @WithLock('order:<dto.__proto__>')
            async m(dto: object) {
              return dto;
            }
          }
          return Templates;
        },
        /'order:<dto\.__proto__>'.*"__proto__"/,
      ],
      [
        '__proto__ as the parameter',
        () => {
          class Templates {
            @WithLock('order:<__proto__>')
            async m(dto: object) {
              return dto;
            }
          }
          return Templates;
        },
        /'order:<__proto__>'.*"__proto__"/,
      ],
      [
        'constructor path',
        () => {
          class Templates {
            @WithLock('order:<dto.constructor.name>')
            async m(dto: object) {
              return dto;
            }
          }
          return Templates;
        },
        /'order:<dto\.constructor\.name>'.*"constructor"/,
      ],
      [
        'prototype path',
        () => {
          class Templates {
            @WithLock('order:<0.prototype>')
            async m(dto: object) {
              return dto;
            }
          }
          return Templates;
        },
        /'order:<0\.prototype>'.*"prototype"/,
      ],
      [
        'empty path segment',
        () => {
          class Templates {
            @WithLock('order:<dto..id>')
            async m(dto: object) {
              return dto;
            }
          }
          return Templates;
        },
        /'order:<dto\.\.id>'.*invalid part ""/,
      ],
      [
        'spaces inside a placeholder',
        () => {
          class Templates {
            @WithLock('order:< id >')
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /'order:< id >'.*invalid part " id "/,
      ],
      [
        'position past the parameters',
        () => {
          class Templates {
            @WithLock('order:<3>')
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /'order:<3>'.*past the method's 1 declared parameter/,
      ],
      [
        'empty template',
        () => {
          class Templates {
            @WithLock('')
            async m() {
              return 1;
            }
          }
          return Templates;
        },
        /@WithLock\(''\) on Templates\.m: a key template is empty/,
      ],
      [
        'empty template array',
        () => {
          class Templates {
            @WithLock([])
            async m() {
              return 1;
            }
          }
          return Templates;
        },
        /@WithLock\(\[\]\) on Templates\.m: the array of key templates is empty/,
      ],
      [
        'template array with a bad element',
        () => {
          class Templates {
            @WithLock(['a:<id>', 'b:<nope>'])
            async m(id: string) {
              return id;
            }
          }
          return Templates;
        },
        /\['a:<id>', 'b:<nope>'\].*no parameter named "nope"/,
      ],
      [
        'template a number',
        () => {
          class Templates {
            @WithLock(42 as unknown as string)
            async m() {
              return 1;
            }
          }
          return Templates;
        },
        /on Templates\.m: a key template must be a string.*got 42/,
      ],
      [
        'template null',
        () => {
          class Templates {
            @WithLock(null as unknown as string)
            async m() {
              return 1;
            }
          }
          return Templates;
        },
        /on Templates\.m: a key template must be a string.*got null/,
      ],
    ];

    it.each(templates)('%s → LockKeyError naming the template', (_name, define, message) => {
      const error = definitionError(define);
      expect(error).toBeInstanceOf(LockKeyError);
      expect((error as Error).message).toMatch(message);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('@WithLock bad values at call time reject (never throw synchronously), running nothing', () => {
    let svc: BadArgs;
    beforeAll(() => {
      svc = main.app.get(BadArgs);
    });

    const tooLongValue = 'v'.repeat(MAX_KEY_LENGTH);
    const byName: Array<[string, unknown, RegExp]> = [
      ['undefined', undefined, /<id> resolved to undefined/],
      ['null', null, /<id> resolved to null/],
      ['empty string', '', /<id> resolved to ""/],
      ['object', { id: 1 }, /<id> resolved to object/],
      ['array', ['a'], /<id> resolved to array\(1\)/],
      ['Date', new Date(0), /<id> resolved to Date instance/],
      ['function', function keyMaker() {}, /<id> resolved to function keyMaker/],
      ['NaN', Number.NaN, /<id> resolved to NaN/],
      ['Infinity', Number.POSITIVE_INFINITY, /<id> resolved to Infinity/],
      ['symbol', Symbol('s'), /<id> resolved to Symbol\(s\)/],
      ['value making the key too long', tooLongValue, /1028 characters long \(limit 1024\)/],
    ];

    const methods: Array<[string, (value: unknown) => unknown, string]> = [
      ['async, by name', (value) => svc.byName(value), "@WithLock('bad:<id>') on BadArgs.byName"],
      ['sync, by position', (value) => svc.syncByIndex(value), "@WithLock('bad:<0>') on BadArgs.syncByIndex"],
    ];
    const table = methods.flatMap(([method, call, where]) =>
      byName.map(([name, value, message]) => {
        // `<0>` in the sync method: the same messages with <0> instead of <id>.
        const adjusted = where.includes('<0>') ? new RegExp(message.source.replace('<id>', '<0>')) : message;
        return [method, name, call, value, adjusted, where] as const;
      }),
    );

    it.each(table)('%s: %s → LockKeyError', async (_method, name, call, value, message, where) => {
      svc.ran = [];
      const error = await rejectionOf(() => call(value));
      expect(error).toBeInstanceOf(LockKeyError);
      expect((error as Error).message).toMatch(message);
      if (name !== 'value making the key too long') expect((error as Error).message).toContain(where);
      expect(svc.ran).toEqual([]);
    });

    const paths: Array<[string, unknown, RegExp]> = [
      ['argument undefined', undefined, /cannot read "id" of <dto>, which is undefined/],
      ['argument null', null, /cannot read "id" of <dto>, which is null/],
      ['argument a string', 'abc', /cannot read "id" of <dto>, which is "abc"/],
      ['property missing', {}, /<dto\.id> resolved to undefined/],
      ['property null', { id: null }, /<dto\.id> resolved to null/],
      ['property an object', { id: { nested: 1 } }, /<dto\.id> resolved to object/],
      ['property empty', { id: '' }, /<dto\.id> resolved to ""/],
      ['property NaN', { id: Number.NaN }, /<dto\.id> resolved to NaN/],
    ];
    it.each(paths)('path <dto.id>: %s → LockKeyError', async (_name, value, message) => {
      svc.ran = [];
      const error = await rejectionOf(() => svc.byPath(value));
      expect(error).toBeInstanceOf(LockKeyError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain("@WithLock('bad:<dto.id>') on BadArgs.byPath");
      expect(svc.ran).toEqual([]);
    });

    const functionResults: Array<[string, unknown, RegExp]> = [
      ['undefined', undefined, /key function returned undefined/],
      ['empty string', '', /key function returned ""/],
      ['number', 42, /key function returned 42/],
      ['empty array', [], /returned array\(0\) \(the array is empty\)/],
      ['array with an empty key', ['a', ''], /returned array\(2\) \(element 1 is ""\)/],
      ['too long key', 'f'.repeat(MAX_KEY_LENGTH + 1), /1025 characters long \(limit 1024\)/],
    ];
    it.each(functionResults)('function form returning %s → LockKeyError', async (_name, value, message) => {
      svc.ran = [];
      const error = await rejectionOf(() => svc.byFunction(value));
      expect(error).toBeInstanceOf(LockKeyError);
      expect((error as Error).message).toMatch(message);
      expect(svc.ran).toEqual([]);
    });

    it('an Observable method errors the Observable (no synchronous throw)', async () => {
      svc.ran = [];
      let stream!: Observable<unknown>;
      expect(() => {
        stream = svc.stream(undefined);
      }).not.toThrow();
      const error = await lastValueFrom(stream).then(
        () => new Error('the observable completed'),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(LockKeyError);
      expect((error as Error).message).toMatch(/<id> resolved to undefined/);
      expect(svc.ran).toEqual([]);
    });

    it('a decorated method on an instance Nest did not create rejects with LockConfigError', async () => {
      const error = await rejectionOf(() => new Unbound().run('x'));
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(/Unbound\.run has no LockService/);
    });

    it('left nothing locked', async () => {
      expect(await lockKeysLeft(redis)).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('option values', () => {
    /** [name, options, message for LockService calls, message for @WithLock at definition] */
    const badOptions: Array<[string, unknown, RegExp, RegExp]> = [
      ['ttl 0', { ttl: 0 }, /"ttl": 0;.*greater than 0/, /"ttl": 0;/],
      ['ttl negative', { ttl: -5 }, /"ttl": -5;/, /"ttl": -5;/],
      ['ttl NaN', { ttl: Number.NaN }, /"ttl": NaN;/, /"ttl": NaN;/],
      ['ttl Infinity', { ttl: Number.POSITIVE_INFINITY }, /"ttl": Infinity;/, /"ttl": Infinity;/],
      ['ttl a string', { ttl: '1000' }, /"ttl": "1000";/, /"ttl": "1000";/],
      ['ttl null', { ttl: null }, /"ttl": null;/, /"ttl": null;/],
      // Redis cannot take this as PX (it is sent as "1e+21"): a config error, not "Redis unreachable".
      ['ttl beyond what Redis accepts', { ttl: 1e21, wait: 0 }, /"ttl": 1e\+21;/, /"ttl": 1e\+21;/],
      ['wait negative', { wait: -1 }, /"wait": -1;.*0 or more/, /"wait": -1;/],
      ['wait NaN', { wait: Number.NaN }, /"wait": NaN;/, /"wait": NaN;/],
      ['wait a string', { wait: '0' }, /"wait": "0";/, /"wait": "0";/],
      ['maxHold 0', { maxHold: 0 }, /"maxHold": 0;/, /"maxHold": 0;/],
      ['maxHold negative', { maxHold: -1 }, /"maxHold": -1;/, /"maxHold": -1;/],
      ['autoExtend "yes"', { autoExtend: 'yes' }, /"autoExtend": "yes";.*true or false/, /"autoExtend": "yes";/],
      ['autoExtend 1', { autoExtend: 1 }, /"autoExtend": 1;/, /"autoExtend": 1;/],
      ['fair "x"', { fair: 'x' }, /"fair": "x";/, /"fair": "x";/],
      ['signal not an AbortSignal', { signal: { aborted: false } }, /"signal": object;.*AbortSignal/, /"signal"/],
      ['signal a string', { signal: 'stop' }, /"signal": "stop";/, /"signal"/],
      ['unknown option', { tll: 1000 }, /Unknown lock option "tll"/, /(Unknown|unknown).*"tll"/],
      ['unknown option timeout', { timeout: 5 }, /Unknown lock option "timeout"/, /(Unknown|unknown).*"timeout"/],
      ['onBusy "ignore"', { onBusy: 'ignore' }, /Unknown lock option "onBusy"/, /"onBusy".*"ignore".*'throw' or 'skip'/],
      ['options a string', 'fast', /"options": "fast"/, /"options"|options/],
      ['options a number', 42, /"options": 42/, /"options"|options/],
      // An array is not an options object (e.g. keys passed in the wrong position).
      ['options an array', [], /"options": array\(0\)/, /"options"|options/],
    ];

    const serviceEntries: Array<[string, (key: string, options: unknown) => Promise<unknown>]> = [
      ['acquire', (key, options) => locks.acquire(key, options as never)],
      ['tryAcquire', (key, options) => locks.tryAcquire(key, options as never)],
      ['withLock', (key, options) => locks.withLock(key, () => 'ran', options as never)],
    ];
    const serviceTable = serviceEntries.flatMap(([entry, call]) =>
      badOptions.map(([name, options, message], i) => [entry, name, call, options, message, `opt:${entry}:${i}`] as const),
    );

    it.each(serviceTable)('%s with %s → LockConfigError naming option and value', async (_entry, _name, call, options, message, key) => {
      const error = await rejectionOf(() => call(key, options));
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(message);
      expect(await locks.isLocked(key)).toBe(false);
    });

    it.each(badOptions)('@WithLock with %s → LockConfigError at class definition', (_name, options, _message, message) => {
      const error = definitionError(() => {
        class Options {
          @WithLock('opt:decorator', options as never)
          async m() {
            return 1;
          }
        }
        return Options;
      });
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(message);
    });

    it('@WithLock option errors say which method they are about, like onBusy and template errors do', () => {
      const error = definitionError(() => {
        class Where {
          @WithLock('opt:where', { ttl: 0 })
          async m() {
            return 1;
          }
        }
        return Where;
      });
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(/"ttl": 0/);
      expect((error as Error).message).toContain('Where.m');
    });

    it('@WithLock with null options → LockConfigError at class definition (not a TypeError)', () => {
      const error = definitionError(() => {
        class NullOptions {
          @WithLock('opt:null', null as never)
          async m() {
            return 1;
          }
        }
        return NullOptions;
      });
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toContain('NullOptions.m');
    });

    it('withLock(key, notAFunction) → LockConfigError, and nothing is locked', async () => {
      for (const fn of [undefined, null, 'fn', 42, {}, Promise.resolve(1)]) {
        const error = await rejectionOf(() => locks.withLock('opt:nofn', fn as never));
        expect(error).toBeInstanceOf(LockConfigError);
        expect((error as Error).message).toMatch(/"fn":.*expects a callback/);
        expect(await locks.isLocked('opt:nofn')).toBe(false);
      }
    });

    it('left nothing locked', async () => {
      expect(await lockKeysLeft(redis)).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('module options not covered by lock.module.spec', () => {
    const url = () => server.url;
    const cases: Array<[string, () => unknown, RegExp]> = [
      ['prefix null', () => ({ redis: url(), prefix: null }), /"prefix": null/],
      ['prefix an array', () => ({ redis: url(), prefix: ['a'] }), /"prefix": array\(1\)/],
      ['pollInterval negative', () => ({ redis: url(), pollInterval: -1 }), /"pollInterval": -1;/],
      ['pollInterval NaN', () => ({ redis: url(), pollInterval: Number.NaN }), /"pollInterval": NaN;/],
      ['pollInterval Infinity', () => ({ redis: url(), pollInterval: Number.POSITIVE_INFINITY }), /"pollInterval": Infinity;/],
      // Sent to Redis as a PX ("2.5e+21") by every waiter.
      ['pollInterval beyond what Redis accepts', () => ({ redis: url(), pollInterval: 1e21 }), /"pollInterval": 1e\+21;/],
      ['ttl beyond what Redis accepts', () => ({ redis: url(), ttl: 1e21 }), /"ttl": 1e\+21;/],
      ['replicaTimeout 0', () => ({ redis: url(), replicaTimeout: 0 }), /"replicaTimeout": 0;/],
      ['replicaTimeout a string', () => ({ redis: url(), replicaTimeout: '100' }), /"replicaTimeout": "100";/],
      ['waitForReplicas fractional', () => ({ redis: url(), waitForReplicas: 1.5 }), /"waitForReplicas": 1\.5;/],
      ['waitForReplicas a string', () => ({ redis: url(), waitForReplicas: '1' }), /"waitForReplicas": "1";/],
      ['maxHold NaN', () => ({ redis: url(), maxHold: Number.NaN }), /"maxHold": NaN;/],
      ['autoExtend null', () => ({ redis: url(), autoExtend: null }), /"autoExtend": null;/],
      ['redis null', () => ({ redis: null }), /"redis": null;/],
      ['redis empty string', () => ({ redis: '' }), /"redis": "";/],
      ['redis true', () => ({ redis: true }), /"redis": true;/],
      ['redis an array', () => ({ redis: [url()] }), /"redis": array\(1\);/],
      ['redlock a URL string', () => ({ redlock: url() }), /"redlock": "redis:\/\/.*";.*array of 3 or more/],
      ['redlock an object', () => ({ redlock: { a: url() } }), /"redlock": object;/],
      ['redlock null', () => ({ redlock: null }), /"redlock": null;/],
      ['redlock with a null master', () => ({ redlock: [url(), url(), null] }), /"redlock\[2\]": null;/],
      ['redlock empty', () => ({ redlock: [] }), /"redlock": array\(0\);/],
      ['redlockHungAfter without redlock', () => ({ redis: url(), redlockHungAfter: 5_000 }), /"redlockHungAfter" applies to a Redlock quorum only/],
      ['redlockHungAfter 0', () => ({ redlock: [url(), url(), url()], redlockHungAfter: 0 }), /"redlockHungAfter": 0;/],
      ['redlockHungAfter a string', () => ({ redlock: [url(), url(), url()], redlockHungAfter: '5000' }), /"redlockHungAfter": "5000";/],
    ];

    it.each(cases)('%s → LockConfigError at bootstrap', async (_name, options, message) => {
      const error = await bootstrapError(() => startLockApp(options() as LockModuleOptions));
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(message);
    });

    const factoryResults: Array<[string, unknown]> = [
      ['undefined', undefined],
      ['null', null],
      ['a URL string', 'redis://127.0.0.1:1'],
      ['an array', [{ redis: 'redis://127.0.0.1:1' }]],
    ];
    it.each(factoryResults)('forRootAsync factory returning %s → LockConfigError at bootstrap', async (_name, result) => {
      const error = await bootstrapError(async () => {
        @Module({ imports: [LockModule.forRootAsync({ useFactory: () => result as LockModuleOptions })] })
        class FactoryModule {}
        return (await Test.createTestingModule({ imports: [FactoryModule] }).compile()).init();
      });
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(/"options".*expects an options object/);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('handles across services', () => {
    it('another service cannot take or free a held lock; release twice is a no-op; extend after release → LockLostError', async () => {
      const b = await startLockApp({ redis: server.url });
      let bClosed = false;
      const lockA = await locks.acquire('cross:1');
      try {
        expect(await b.locks.tryAcquire('cross:1')).toBeNull();
        const busy = await rejectionOf(() => b.locks.acquire('cross:1', { wait: 50 }));
        expect(busy).toBeInstanceOf(LockNotAcquiredError);
        await expect(b.locks.withLock('cross:1', () => 'ran', { wait: 0 })).rejects.toBeInstanceOf(LockNotAcquiredError);
        // The error B sees never reveals A's token.
        expect(JSON.stringify((busy as LockNotAcquiredError).getResponse())).not.toContain(lockA.token);
        expect((busy as Error).message).not.toContain(lockA.token);
        // Shutting B down releases B's locks only.
        await b.close();
        bClosed = true;
        expect(ownerOf(await redis.get('lock:{cross:1}'))).toBe(lockA.token);
        expect(lockA.signal.aborted).toBe(false);
      } finally {
        if (!bClosed) await b.close();
      }

      await lockA.release();
      expect(await locks.isLocked('cross:1')).toBe(false);
      // Another owner takes the key; a second release of A's handle must not touch it.
      const lockOther = await other.locks.acquire('cross:1', { wait: 0 });
      await expect(lockA.release()).resolves.toBeUndefined();
      await expect(lockA[Symbol.asyncDispose]()).resolves.toBeUndefined();
      expect(ownerOf(await redis.get('lock:{cross:1}'))).toBe(lockOther.token);
      expect(lockOther.signal.aborted).toBe(false);

      const lost = await rejectionOf(() => lockA.extend());
      expect(lost).toBeInstanceOf(LockLostError);
      expect((lost as LockLostError).keys).toEqual(['cross:1']);
      expect((lost as Error).message).toMatch(/"cross:1".*already released/);
      expect(ownerOf(await redis.get('lock:{cross:1}'))).toBe(lockOther.token);
      await lockOther.release();
    });

    it('extend with a bad ttl → LockConfigError; the lock stays held and keeps being renewed', async () => {
      const lock = await locks.acquire('extend:bad', { ttl: 1_000 });
      try {
        const expiresAt = lock.expiresAt;
        for (const ttl of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 'x', null]) {
          const error = await rejectionOf(() => lock.extend(ttl as never));
          expect([ttl, error]).toEqual([ttl, expect.any(LockConfigError)]);
          expect((error as Error).message).toMatch(/"ttl":/);
          expect(lock.signal.aborted).toBe(false);
          expect(ownerOf(await redis.get('lock:{extend:bad}'))).toBe(lock.token);
        }
        expect(lock.expiresAt).toBeGreaterThanOrEqual(expiresAt - 1);
        // Several ttls later, the background renewal (with the lock's own ttl) still holds it.
        await sleep(2_500);
        expect(lock.signal.aborted).toBe(false);
        expect(ownerOf(await redis.get('lock:{extend:bad}'))).toBe(lock.token);
        const pttl = await redis.pttl('lock:{extend:bad}');
        expect(pttl).toBeGreaterThan(0);
        expect(pttl).toBeLessThanOrEqual(1_000);
        await expect(lock.extend(1_000)).resolves.toBeUndefined();
      } finally {
        await lock.release();
      }
      expect(await locks.isLocked('extend:bad')).toBe(false);
    });

    it('extend with a ttl Redis cannot take (1e21) → LockConfigError; the lock stays held and keeps being renewed', async () => {
      const lock = await locks.acquire('extend:huge', { ttl: 1_000 });
      try {
        const error = await rejectionOf(() => lock.extend(1e21));
        await sleep(2_500);
        // One comparison, so a failure shows the whole outcome (error and what became of the lock).
        expect({
          error: `${(error as Error).name}: ${(error as Error).message}`,
          aborted: lock.signal.aborted,
          abortReason: lock.signal.aborted ? String((lock.signal.reason as Error).message) : undefined,
          stillOurs: (ownerOf(await redis.get('lock:{extend:huge}'))) === lock.token,
        }).toEqual({
          error: expect.stringMatching(/^LockConfigError: .*"ttl": 1e\+21/),
          aborted: false,
          abortReason: undefined,
          stillOurs: true,
        });
      } finally {
        await lock.release();
      }
      expect(await locks.isLocked('extend:huge')).toBe(false);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('owner tokens', () => {
    it('are the instance id, a time and 128 random bits in hex (60 chars), all distinct over 1,000 acquisitions, stored as the lock value', async () => {
      const tokens = new Set<string>();
      for (let batch = 0; batch < 10; batch++) {
        const held = await Promise.all(Array.from({ length: 100 }, (_, i) => locks.acquire(`tok:${batch}:${i}`, { wait: 0 })));
        for (const lock of held) {
          expect(lock.token).toMatch(/^[0-9a-f]{60}$/);
          tokens.add(lock.token);
        }
        const stored = await redis.mget(held.map((lock) => `lock:{${lock.keys[0]}}`));
        expect(stored).toEqual(held.map((lock) => `${lock.token}:${lock.fence}`));
        await Promise.all(held.map((lock) => lock.release()));
      }
      expect(tokens.size).toBe(1_000);
      // The instance id leads every token of this service.
      for (const token of tokens) expect(token.slice(0, 16)).toBe(locks.instanceId);
      // The last 128 bits are not a counter or a timestamp: each of their hex positions takes all 16 values over 1,000 tokens.
      for (let position = 28; position < 60; position++) {
        const seen = new Set([...tokens].map((token) => token[position]));
        expect([position, seen.size]).toEqual([position, 16]);
      }
    });

    it('never appear in logs, on a lost-lock warning or a failed release', async () => {
      const collector = new CollectingLogger();
      const previous = (Logger as unknown as { staticInstanceRef: LoggerService }).staticInstanceRef;
      const consoleSpies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((method) => jest.spyOn(console, method));
      main.app.useLogger(collector);
      const tokens: string[] = [];
      try {
        // Lost: the key is deleted behind the holder's back; the next renewal finds it gone.
        const lost = await locks.acquire('sec:lost', { ttl: 300 });
        tokens.push(lost.token);
        expect(await redis.del('lock:{sec:lost}')).toBe(1);
        const reason = await aborted(lost.signal);
        expect(reason).toBeInstanceOf(LockLostError);
        expect((reason as Error).message).not.toContain(lost.token);
        await expect(lost.extend()).rejects.toBeInstanceOf(LockLostError);
        await lost.release();

        // Failed release: Redis does not answer within the release bound.
        const stuck = await locks.acquire('sec:release');
        tokens.push(stuck.token);
        const pauser = server.client();
        try {
          await pauser.call('CLIENT', 'PAUSE', '3000', 'ALL');
          await stuck.release();
        } finally {
          pauser.disconnect();
        }
        // The release queued behind the pause still goes through afterwards.
        await eventually(async () => (await redis.exists('lock:{sec:release}')) === 0, 10_000, 'the late release');

        const lines = collector.lines;
        expect(lines.some((line) => /warn .*"sec:lost" was lost/.test(line))).toBe(true);
        expect(lines.some((line) => /warn .*Could not release "sec:release"/.test(line))).toBe(true);
        const printed = consoleSpies.flatMap((spy) => spy.mock.calls.map((args) => args.map((arg) => safeJson(arg)).join(' ')));
        for (const token of tokens) {
          for (const line of [...lines, ...printed]) expect(line).not.toContain(token);
        }
      } finally {
        main.app.useLogger(previous);
        consoleSpies.forEach((spy) => spy.mockRestore());
      }
    });
  });

  // -------------------------------------------------------------------------------------------------------
  it('after the whole table, no lock key is left in Redis (fence counters and wait markers aside)', async () => {
    expect(await lockKeysLeft(redis)).toEqual([]);
    // Instance records (lock:instance:<id>) belong to the running apps, not to any lock.
    for (const key of (await redis.keys('lock:*')).filter((key) => !key.startsWith('lock:instance:'))) {
      expect(key).toMatch(/(:wanted|^lock:fences)$/);
      if (key.endsWith(':wanted')) expect(await redis.pttl(key)).toBeGreaterThan(0);
      else expect(await redis.type(key)).toBe('string');
    }
  });
});
