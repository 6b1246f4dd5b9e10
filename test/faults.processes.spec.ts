/**
 * Faults, load and bad input: several real Node processes, each a Nest app with its own
 * LockModule, against real redis-server processes (one Redis, or three Redlock masters).
 *
 * - Exclusion under load: 4 processes x 8 workers x 25 acquisitions on 3 keys, half through
 *   @WithLock and half through withLock, each doing a non-atomic read-modify-write on a counter.
 * - A holder killed with SIGKILL: a waiter gets the key once its lease runs out.
 * - SIGTERM to an app with enableShutdownHooks(): its locks are released before it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Lock, type LockModuleOptions } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { eventually, startLockApp } from './support/lock-app.js';
import { watchProcessFailures } from './support/process-failures.js';
import { ownerOf } from './support/lock-value.js';

const PROCESSES = 4;
const WORKERS = 8;
const ACQUISITIONS = 25;
const KEYS = ['k0', 'k1', 'k2'];

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));


type ChildEvent = { event: string } & Record<string, any>;

/** A fixture process speaking one JSON object per stdout line. */
class Child {
  readonly events: ChildEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderrText = '';
  private stdoutRest = '';
  private readonly listeners = new Set<() => void>();

  constructor(readonly proc: ChildProcess, readonly name: string) {
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        resolve({ code, signal });
        this.notify();
      }),
    );
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      this.stdoutRest += chunk;
      const lines = this.stdoutRest.split('\n');
      this.stdoutRest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.events.push(JSON.parse(line) as ChildEvent);
        } catch {
          this.stderrText += `[stdout] ${line}\n`;
        }
      }
      this.notify();
    });
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => (this.stderrText += chunk));
    proc.on('error', (error) => (this.stderrText += `[spawn] ${String(error)}\n`));
  }

  static spawn(file: string, config: unknown, name: string): Child {
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the fixtures
    const proc = spawn(process.execPath, [fixture(file), JSON.stringify(config)], {
      cwd: ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const child = new Child(proc, name);
    children.add(child);
    return child;
  }

  get gone(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  get stderr(): string {
    return this.stderrText;
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }

  /**
   * Resolves with the first event matching `predicate`; rejects if the process exits first or after
   * `ms` (a deadline, not a timing assertion).
   */
  waitFor(predicate: (event: ChildEvent) => boolean, what: string, ms = 60_000): Promise<ChildEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(predicate);
        if (found) return finish(() => resolve(found));
        if (this.gone) {
          finish(() =>
            reject(new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}; events ${JSON.stringify(this.events)}; stderr:\n${this.stderrText}`)),
          );
        }
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`${this.name}: no ${what} within ${ms} ms; events ${JSON.stringify(this.events)}; stderr:\n${this.stderrText}`))),
        ms,
      );
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  /** SIGKILL unless it already exited; resolves once it has. */
  async kill(): Promise<void> {
    if (!this.gone) this.proc.kill('SIGKILL');
    await this.exited;
    children.delete(this);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** Every fixture process started by this file and not yet reaped. */
const children = new Set<Child>();

async function killAllChildren(): Promise<void> {
  await Promise.all([...children].map((child) => child.kill()));
}

/** How many times worker w of process p hits each key: the same formula as the fixture. */
function expectedPerKey(): Record<string, number> {
  const expected: Record<string, number> = Object.fromEntries(KEYS.map((key) => [key, 0]));
  for (let p = 0; p < PROCESSES; p++) {
    for (let w = 0; w < WORKERS; w++) {
      for (let i = 0; i < ACQUISITIONS; i++) expected[KEYS[(p * WORKERS + w + i) % KEYS.length]] += 1;
    }
  }
  return expected;
}

/** Indices where the list does not strictly increase. */
function notIncreasing(values: number[]): Array<{ at: number; previous: number; value: number }> {
  const bad: Array<{ at: number; previous: number; value: number }> = [];
  for (let i = 1; i < values.length; i++) {
    if (!(values[i] > values[i - 1])) bad.push({ at: i, previous: values[i - 1], value: values[i] });
  }
  return bad;
}

/** Collects release announcements ("r<token><key>") from the release channel of each server. */
async function listenForReleases(servers: RedisServer[]): Promise<{ messages: string[]; close(): Promise<void> }> {
  const messages: string[] = [];
  const subscribers = servers.map((server) => server.client());
  for (const subscriber of subscribers) {
    subscriber.on('message', (_channel: string, message: string) => messages.push(message));
    await subscriber.subscribe('lock:released');
  }
  return {
    messages,
    close: async () => {
      await Promise.all(subscribers.map((subscriber) => subscriber.quit()));
    },
  };
}

type Mode = 'single Redis' | 'Redlock (3 masters)';
const MODES: Mode[] = ['single Redis', 'Redlock (3 masters)'];

/** Lock servers for a mode: one, or three independent masters. */
async function lockServers(mode: Mode): Promise<RedisServer[]> {
  return mode === 'single Redis' ? [await RedisServer.start()] : RedisServer.startMany(3);
}

function lockOptions(servers: RedisServer[]): Pick<LockModuleOptions, 'redis' | 'redlock'> {
  return servers.length === 1 ? { redis: servers[0].url } : { redlock: servers.map((server) => server.url) };
}

describe('Faults, load and bad input: several processes', () => {
  let watch: ReturnType<typeof watchProcessFailures>;

  beforeEach(() => {
    watch = watchProcessFailures();
  });

  afterEach(async () => {
    watch.stop();
    await killAllChildren();
  });

  afterAll(async () => {
    await killAllChildren();
    await stopAllRedisServers();
  });

  describe.each(MODES)('%s', (mode) => {
    it(`keeps ${PROCESSES} processes x ${WORKERS} workers x ${ACQUISITIONS} acquisitions on ${KEYS.length} keys mutually exclusive (@WithLock and withLock)`, async () => {
      const started = Date.now();
      const servers = await lockServers(mode);
      const dataServer = await RedisServer.start();
      const data = dataServer.client();
      const workers: Child[] = [];
      try {
        for (let index = 0; index < PROCESSES; index++) {
          workers.push(
            Child.spawn(
              'fault-worker.mjs',
              {
                index,
                lock: lockOptions(servers),
                dataPort: dataServer.port,
                keys: KEYS,
                workers: WORKERS,
                acquisitions: ACQUISITIONS,
                wait: 180_000,
              },
              `worker process ${index}`,
            ),
          );
        }
        await Promise.all(workers.map((worker) => worker.waitFor((e) => e.event === 'ready', 'ready', 90_000)));
        const go = Date.now();
        for (const worker of workers) worker.send('go');
        const reports = await Promise.all(
          workers.map((worker) => worker.waitFor((e) => e.event === 'done', 'the end of its run', 400_000)),
        );
        const exits = await Promise.all(workers.map((worker) => worker.exited));
        const runMs = Date.now() - go;

        // What Redis saw: no overlap, every increment kept, fences strictly increasing per key.
        const expected = expectedPerKey();
        const violations = await data.lrange('violations', 0, -1);
        const counters: Record<string, number> = {};
        const fenceProblems: Record<string, unknown> = {};
        const fenceCounts: Record<string, number> = {};
        const inside: Record<string, string | null> = {};
        for (const key of KEYS) {
          counters[key] = Number(await data.get(`counter:${key}`));
          const fences = (await data.lrange(`fences:${key}`, 0, -1)).map(Number);
          fenceCounts[key] = fences.length;
          fenceProblems[key] = notIncreasing(fences).slice(0, 5);
          inside[key] = await data.get(`inside:${key}`);
        }
        const total = Object.values(counters).reduce((a, b) => a + b, 0);
        const overlaps = violations.length;
        console.log(
          `[faults] ${mode}: ${PROCESSES} processes x ${WORKERS} workers x ${ACQUISITIONS} acquisitions = ${total} of ` +
            `${PROCESSES * WORKERS * ACQUISITIONS} critical sections on ${KEYS.length} keys ` +
            `(${JSON.stringify(counters)}); overlaps found: ${overlaps}; run ${runMs} ms, test ${Date.now() - started} ms`,
        );

        expect({ overlaps, sample: violations.slice(0, 5) }).toEqual({ overlaps: 0, sample: [] });
        expect(counters).toEqual(expected);
        expect(total).toBe(PROCESSES * WORKERS * ACQUISITIONS);
        expect(fenceCounts).toEqual(expected);
        expect(fenceProblems).toEqual(Object.fromEntries(KEYS.map((key) => [key, []])));
        expect(inside).toEqual(Object.fromEntries(KEYS.map((key) => [key, '0'])));

        // What each process did.
        for (const [index, report] of reports.entries()) {
          expect({
            index,
            done: report.done,
            decorator: report.decorator,
            withLock: report.withLock,
            errors: report.errors,
            errorSamples: report.errorSamples,
            violations: report.violations,
            lost: report.lost,
            dataErrors: report.dataErrors,
            leasesLeft: report.leases,
          }).toEqual({
            index,
            done: WORKERS * ACQUISITIONS,
            decorator: (WORKERS / 2) * ACQUISITIONS,
            withLock: (WORKERS / 2) * ACQUISITIONS,
            errors: 0,
            errorSamples: [],
            violations: 0,
            lost: 0,
            dataErrors: [],
            leasesLeft: 0,
          });
        }
        expect(exits).toEqual(workers.map(() => ({ code: 0, signal: null })));

        // Nothing left locked on any lock server.
        for (const server of servers) {
          const client = server.client();
          try {
            expect(await client.exists(...KEYS.map((key) => `lock:{counter:${key}}`))).toBe(0);
          } finally {
            await client.quit();
          }
        }
        expect([...watch.unhandledRejections, ...watch.uncaughtExceptions]).toEqual([]);
      } finally {
        await Promise.all(workers.map((worker) => worker.kill()));
        await data.quit();
        await dataServer.stop();
        await Promise.all(servers.map((server) => server.stop()));
      }
    }, 600_000);

    it('hands the key to a waiter after the ttl when the holder process is killed with SIGKILL; its fence is larger', async () => {
      const started = Date.now();
      const key = 'faults:killed';
      const servers = await lockServers(mode);
      const app = await startLockApp({ ...lockOptions(servers), wait: 0 });
      const releases = await listenForReleases(servers);
      const holder = Child.spawn('fault-holder.mjs', { lock: lockOptions(servers), keys: [key], ttl: 1_000 }, 'holder');
      try {
        const held = await holder.waitFor((e) => e.event === 'held' || e.event === 'failed', 'the lock', 90_000);
        expect(held.event).toBe('held');
        expect(await app.locks.isLocked(key)).toBe(true);

        // A waiter in this process, waiting while the holder keeps renewing.
        let settled = false;
        const waiting = app.locks.acquire(key, { wait: 20_000 });
        waiting.then(
          () => (settled = true),
          () => (settled = true),
        );
        await eventually(() => app.locks.leaseStats.waiters >= 1 || settled, 20_000, 'the waiter to wait');
        // Two renewals after the waiter started: the holder kept the key past its ttl of 1000 ms.
        const renewalsAtWait = holder.count('renewed');
        await holder.waitFor((e) => e.event === 'renewed' && holder.count('renewed') >= renewalsAtWait + 3, 'three renewals', 60_000);
        expect({ settled, lost: holder.count('lost') }).toEqual({ settled: false, lost: 0 });

        const killedAt = Date.now();
        await holder.kill();
        expect(await holder.exited).toEqual({ code: null, signal: 'SIGKILL' });

        const lock: Lock = await waiting;
        try {
          console.log(`[faults] ${mode}: waiter got the key ${Date.now() - killedAt} ms after SIGKILL (ttl 1000); test ${Date.now() - started} ms`);
          expect(lock.keys).toEqual([key]);
          expect(lock.fence).toBeGreaterThan(held.fence as number);
          // Nobody released the holder's lock: it ran out.
          expect(releases.messages.filter((message) => message.includes(held.token as string))).toEqual([]);
        } finally {
          await lock.release();
        }
        expect(await app.locks.isLocked(key)).toBe(false);
        expect([...watch.unhandledRejections, ...watch.uncaughtExceptions]).toEqual([]);
      } finally {
        await holder.kill();
        await releases.close();
        await app.close();
        await Promise.all(servers.map((server) => server.stop()));
      }
    }, 180_000);

    it('releases the locks of an app with enableShutdownHooks() on SIGTERM, before the process exits', async () => {
      const started = Date.now();
      const keys = ['faults:term:a', 'faults:term:b'];
      const lockKeys = keys.map((key) => `lock:{${key}}`);
      const servers = await lockServers(mode);
      const clients = servers.map((server) => server.client());
      const holder = Child.spawn(
        'fault-holder.mjs',
        { lock: lockOptions(servers), keys, ttl: 60_000, shutdownHooks: true },
        'holder',
      );
      try {
        const held = await holder.waitFor((e) => e.event === 'held' || e.event === 'failed', 'the lock', 90_000);
        expect(held.event).toBe('held');
        // Held by the child with a lease far longer than this test: on the one server, or under
        // Redlock on at least a majority (the grant comes at quorum; on a loaded machine the last
        // master's write may still be on its way).
        const holding: typeof clients = [];
        for (const client of clients) {
          const owners = (await client.mget(...lockKeys)).map(ownerOf);
          if (owners.every((owner) => owner === held.token)) holding.push(client);
        }
        expect(holding.length).toBeGreaterThanOrEqual(Math.floor(clients.length / 2) + 1);
        for (const client of holding) {
          for (const lockKey of lockKeys) expect(await client.pttl(lockKey)).toBeGreaterThan(30_000);
        }

        const termAt = Date.now();
        holder.proc.kill('SIGTERM');
        const exit = await holder.exited;
        // Checked right after 'exit': released by the app's shutdown, not expired (ttl 60 s).
        const left = await Promise.all(clients.map((client) => client.exists(...lockKeys)));
        console.log(`[faults] ${mode}: SIGTERM to exit ${Date.now() - termAt} ms (${JSON.stringify(exit)}); test ${Date.now() - started} ms`);
        expect(left).toEqual(clients.map(() => 0));
        // Nest's shutdown hook re-raises the signal after closing the app.
        expect(exit).toEqual({ code: null, signal: 'SIGTERM' });
        expect(holder.stderr).toBe('');

        // And they can be taken at once by someone else.
        const other = await startLockApp({ ...lockOptions(servers), wait: 0 });
        try {
          const lock = await other.locks.tryAcquire(keys);
          expect(lock).not.toBeNull();
          expect((lock as Lock).fences).toEqual({
            [keys[0]]: expect.any(Number),
            [keys[1]]: expect.any(Number),
          });
          expect((lock as Lock).fences[keys[0]]).toBeGreaterThan((held.fences as Record<string, number>)[keys[0]]);
          expect((lock as Lock).fences[keys[1]]).toBeGreaterThan((held.fences as Record<string, number>)[keys[1]]);
          await (lock as Lock).release();
        } finally {
          await other.close();
        }
        expect([...watch.unhandledRejections, ...watch.uncaughtExceptions]).toEqual([]);
      } finally {
        await holder.kill();
        await Promise.all(clients.map((client) => client.quit()));
        await Promise.all(servers.map((server) => server.stop()));
      }
    }, 180_000);
  });
});
