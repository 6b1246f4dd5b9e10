import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { LockConfigError, LockLostError, LockNotAcquiredError, type LockModuleOptions } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { RedisMonitor, releaseAndExpectHandoff } from './support/redis-monitor.js';
import { noSubscribeUserUrl } from './support/redis-admin.js';

const WORKER = fileURLToPath(new URL('./fixtures/semaphore-worker.mjs', import.meta.url));

function startWorker(config: object): { child: ChildProcess; event: (name: string) => Promise<void> } {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const seen = new Set<string>();
  const waiting = new Map<string, () => void>();
  lines.on('line', (line) => {
    try {
      const name = (JSON.parse(line) as { event: string }).event;
      seen.add(name);
      waiting.get(name)?.();
    } catch {
      /* not ours */
    }
  });
  return {
    child,
    event: (name) => (seen.has(name) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(name, resolve))),
  };
}

/** The semaphore behaviour every store must show. */
function describeSemaphores(store: string, options: () => LockModuleOptions): void {
  describe(`counting semaphores (permits) on ${store}`, () => {
    let appA: LockApp;
    let appB: LockApp;
    beforeAll(async () => {
      appA = await startLockApp({ ...options(), wait: 0 });
      appB = await startLockApp({ ...options(), wait: 0 });
    });
    afterAll(async () => {
      await appA?.close();
      await appB?.close();
    });

    it('lets n holders in; the n+1st waits and gets in when one releases', async () => {
      const held = [
        await appA.locks.acquire('sem:1', { permits: 3 }),
        await appB.locks.acquire('sem:1', { permits: 3 }),
        await appA.locks.acquire('sem:1', { permits: 3 }),
      ];
      expect(await appB.locks.tryAcquire('sem:1', { permits: 3 })).toBeNull();
      const waiting = appB.locks.acquire('sem:1', { permits: 3, wait: 20_000 });
      await held[1].release();
      const fourth = await waiting;
      // A strictly larger fence for every permit granted.
      expect(fourth.fence).toBeGreaterThan(Math.max(...held.map((lock) => lock.fence)));
      for (const lock of [held[0], held[2], fourth]) await lock.release();
    });

    it('refuses a holder that disagrees on the number of permits, naming both values', async () => {
      const lock = await appA.locks.acquire('sem:2', { permits: 2 });
      const error = await appB.locks.acquire('sem:2', { permits: 5 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(/permits: 2.*permits: 5/);
      await lock.release();
      // Once nobody holds it, a new number of permits may be used.
      const again = await appB.locks.acquire('sem:2', { permits: 5 });
      await again.release();
    });

    it('takes several semaphore keys all or nothing', async () => {
      const full = await appA.locks.acquire('sem:b', { permits: 1 });
      expect(await appB.locks.tryAcquire(['sem:a', 'sem:b'], { permits: 1 })).toBeNull();
      const a = await appB.locks.acquire('sem:a', { permits: 1 });
      await a.release();
      await full.release();
      const both = await appB.locks.acquire(['sem:a', 'sem:b'], { permits: 1 });
      expect(await appA.locks.tryAcquire('sem:a', { permits: 1 })).toBeNull();
      await both.release();
    });

    it('renews a permit while held, reports an expired one through the signal, and is reentrant', async () => {
      const renewed = await appA.locks.acquire('sem:renew', { permits: 1, ttl: 600 });
      const sent = appA.locks.leaseStats.renewalsSent;
      await eventually(() => appA.locks.leaseStats.renewalsSent >= sent + 3, 20_000, 'renewals');
      expect(await appB.locks.tryAcquire('sem:renew', { permits: 1 })).toBeNull();
      await renewed.release();

      const expiring = await appA.locks.acquire('sem:expire', { permits: 1, ttl: 200, autoExtend: false });
      expect(await aborted(expiring.signal)).toBeInstanceOf(LockLostError);
      const next = await appB.locks.acquire('sem:expire', { permits: 1, wait: 10_000 });
      await next.release();
      await expiring.release();

      await appA.locks.withLock('sem:re', async (outer) => {
        const inner = await appA.locks.acquire('sem:re', { permits: 2 });
        expect(inner.token).toBe(outer.token);
        await inner.release();
      }, { permits: 2 });
    });
  });
}

describe('semaphores', () => {
  let server: RedisServer;
  let data: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    [server, data] = await RedisServer.startMany(2);
    redis = data.client();
  });
  afterAll(async () => {
    await redis?.quit();
    await stopAllRedisServers();
  });

  describeSemaphores('Redis', () => ({ redis: server.url }));
  describeSemaphores("store: 'memory'", () => ({ store: 'memory', prefix: 'sem-memory:' }));

  describe('handoff of a freed permit to a queued waiter', () => {
    let holderApp: LockApp;
    let waiterApp: LockApp;
    const queueLength = (key: string) => redis.llen(`lock:{${key}}:permits:queue`);
    beforeAll(async () => {
      // No poll during a test: every request is the one the test expects.
      holderApp = await startLockApp({ redis: data.url, pollInterval: 600_000 });
      waiterApp = await startLockApp({ redis: data.url, pollInterval: 600_000 });
    });
    afterAll(async () => {
      await holderApp?.close();
      await waiterApp?.close();
    });

    it('gives the permit straight to the waiter, which holds it without asking Redis again', async () => {
      const key = 'sem:handoff';
      const monitor = await RedisMonitor.start(data.port);
      try {
        // The waiter app's first wait subscribes and then asks again at once: warm that up first.
        const warmHeld = await holderApp.locks.acquire(`${key}:warm-up`, { permits: 1 });
        const warmWaiting = waiterApp.locks.acquire(`${key}:warm-up`, { permits: 1, wait: 30_000 });
        await eventually(async () => (await queueLength(`${key}:warm-up`)) === 1, 10_000, 'the warm-up waiter to queue');
        await warmHeld.release();
        await (await warmWaiting).release();

        const held = [await holderApp.locks.acquire(key, { permits: 2 }), await holderApp.locks.acquire(key, { permits: 2 })];
        const waiting = waiterApp.locks.acquire(key, { permits: 2, wait: 30_000 });
        await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the waiter to queue');
        const got = await releaseAndExpectHandoff(monitor, redis, held[0], waiting);
        expect(got.fence).toBeGreaterThan(held[1].fence);
        expect(await redis.zcard(`lock:{${key}}:permits`)).toBe(2);
        await Promise.all([got.release(), held[1].release()]);
        expect(await redis.exists(`lock:{${key}}:permits`, `lock:{${key}}:permits:holds`, `lock:{${key}}:permits:queue`)).toBe(0);
      } finally {
        monitor.stop();
      }
    });

    it('a waiter in the releasing app is handed the permit by the release itself, with no release message', async () => {
      const key = 'sem:same-app';
      // Publishing allowed, subscribing not: no release message reaches the app. Without the
      // release's own reply, the waiter would have to ask Redis again to learn it holds the permit.
      const app = await startLockApp({ redis: await noSubscribeUserUrl(data.port), pollInterval: 600_000 });
      const monitor = await RedisMonitor.start(data.port);
      try {
        const held = await app.locks.acquire(key, { permits: 1, ttl: 600_000 });
        const waiting = app.locks.acquire(key, { permits: 1, wait: 20_000 });
        await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the waiter to queue');
        const got = await releaseAndExpectHandoff(monitor, redis, held, waiting);
        expect(await redis.zscore(`lock:{${key}}:permits`, got.token)).not.toBeNull();
        expect(got.fence).toBeGreaterThan(held.fence);
        await got.release();
      } finally {
        monitor.stop();
        await app.close();
      }
    });

    it('hands no permit over while a writer waits for the key; the writer goes first', async () => {
      const key = 'sem:writer-first';
      const permit = await holderApp.locks.acquire(key, { permits: 1 });
      const writer = holderApp.locks.acquire(key, { wait: 30_000 });
      await eventually(async () => (await redis.exists(`lock:{${key}}:writer-waiting`)) === 1, 10_000, 'the writer to wait');
      let permitWaiterGot = false;
      const permitWaiter = waiterApp.locks.acquire(key, { permits: 1, wait: 30_000 }).then((lock) => {
        permitWaiterGot = true;
        return lock;
      });
      await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the permit waiter to queue');
      await permit.release();
      const writerLock = await writer;
      expect(permitWaiterGot).toBe(false);
      await writerLock.release();
      const second = await permitWaiter;
      expect(second.fence).toBeGreaterThan(writerLock.fence);
      await second.release();
    });

    it('a waiter that gives up leaves the queue, and the next permit goes to the one still waiting', async () => {
      const key = 'sem:gave-up';
      const held = await holderApp.locks.acquire(key, { permits: 1 });
      await expect(waiterApp.locks.acquire(key, { permits: 1, wait: 150 })).rejects.toBeInstanceOf(LockNotAcquiredError);
      await eventually(async () => (await queueLength(key)) === 0, 10_000, 'the waiter that gave up to leave the queue');
      const waiting = waiterApp.locks.acquire(key, { permits: 1, wait: 30_000 });
      await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the live waiter to queue');
      await held.release();
      const got = await waiting;
      expect(await redis.zscore(`lock:{${key}}:permits`, got.token)).not.toBeNull();
      await got.release();
      expect(await redis.exists(`lock:{${key}}:permits`, `lock:{${key}}:permits:queue`)).toBe(0);
    });
  });

  it('reclaims the permit of a holder killed with SIGKILL after its ttl', async () => {
    const app = await startLockApp({ redis: server.url });
    const holder = startWorker({ redisUrl: server.url, key: 'sem:killed', permits: 1, holdForever: true });
    try {
      await holder.event('holding');
      expect(await app.locks.tryAcquire('sem:killed', { permits: 1 })).toBeNull();
      holder.child.kill('SIGKILL');
      await once(holder.child, 'exit');
      const lock = await app.locks.acquire('sem:killed', { permits: 1, wait: 20_000 });
      await lock.release();
    } finally {
      holder.child.kill('SIGKILL');
      await app.close();
    }
  });

  it('never lets more than 3 of 4 processes x 4 workers hold a permits: 3 semaphore, and reaches 3', async () => {
    const workers = Array.from({ length: 4 }, () =>
      startWorker({ redisUrl: server.url, dataPort: data.port, key: 'sem:stress', permits: 3, workers: 4, acquisitions: 15 }),
    );
    try {
      await Promise.all(workers.map((worker) => worker.event('done')));
      const seen = (await redis.lrange('seen:sem:stress', 0, -1)).map(Number);
      console.log(`semaphore stress: 4 processes x 4 workers x 15 = ${seen.length} holds; max concurrent ${Math.max(...seen)}`);
      expect(seen).toHaveLength(4 * 4 * 15);
      expect(Math.max(...seen)).toBe(3);
      expect(Number(await redis.get('holders:sem:stress'))).toBe(0);
    } finally {
      for (const worker of workers) worker.child.kill('SIGKILL');
    }
  }, 120_000);
});
