/**
 * The four contenders behind one small interface, so every scenario runs the same workload:
 *
 *   acquire(key)          take a free key (default settings of the library), resolve a handle
 *   acquireWait(key, ms)  take a key that may be busy, waiting up to `ms`
 *   release(handle)
 *   hold(key, ttl)        take a key and keep it, renewed automatically where the library can
 *   releaseHeld(handle)
 *   acquirePermit(key, permits, ms)   (scenario F, ours and redis-semaphore only) take one of
 *                         `permits` permits of a counting semaphore on `key`, waiting up to `ms`;
 *                         the handle goes back through release(handle)
 *
 * Each library gets its own key namespace and its own ioredis connection(s).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import Redlock from 'redlock';
import { Mutex, Semaphore } from 'redis-semaphore';

/** TTL (ms) for raw and redlock in A–D, where they need one; ours defaults to 30 s too. */
export const DEFAULT_TTL = 30_000;

const RAW_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/** The floor: SET NX PX + compare-and-delete script, 2 round trips; waiting polls every 1 ms. */
export function rawAdapter(client) {
  client.defineCommand('benchRawRelease', { numberOfKeys: 1, lua: RAW_RELEASE });
  const tryTake = async (key, ttl) => {
    const k = `raw:${key}`;
    const token = randomUUID(); // 122 random bits; the cheapest unguessable token Node offers
    return (await client.set(k, token, 'PX', ttl, 'NX')) === 'OK' ? { key: k, token } : null;
  };
  return {
    name: 'raw',
    settingsC: 'SET NX PX 30000; on busy sleep 1 ms (setTimeout) and retry until 30 s',
    async acquire(key) {
      const handle = await tryTake(key, DEFAULT_TTL);
      if (!handle) throw new Error(`raw: ${key} busy`);
      return handle;
    },
    async acquireWait(key, waitMs) {
      const deadline = performance.now() + waitMs;
      for (;;) {
        const handle = await tryTake(key, DEFAULT_TTL);
        if (handle) return handle;
        if (performance.now() >= deadline) throw new Error(`raw: ${key} still busy after ${waitMs} ms`);
        await sleep(1);
      }
    },
    release(handle) {
      return client.benchRawRelease(handle.key, handle.token);
    },
    async hold(key, ttl) {
      const handle = await tryTake(key, ttl); // no renewal: the floor only keeps key + token
      if (!handle) throw new Error(`raw: ${key} busy`);
      return handle;
    },
    async releaseHeld(handle) {
      return (await client.benchRawRelease(handle.key, handle.token)) !== 1;
    },
    renews: false,
  };
}

/** redlock 5.0.0-beta.2 with a single ioredis client, default settings. */
export function redlockAdapter(client) {
  const redlock = new Redlock([client]); // defaults: retryCount 10, retryDelay 200, retryJitter 100, driftFactor 0.01
  const { retryDelay, retryJitter, retryCount, automaticExtensionThreshold } = redlock.settings;
  return {
    name: 'redlock',
    redlock,
    settingsC:
      `defaults retryDelay ${retryDelay} ms ± jitter ${retryJitter} ms (retryCount ${retryCount} by default, ` +
      `raised to wait/retryDelay = 150 so the 30 s wait is the same as for the others); duration ${DEFAULT_TTL}`,
    settingsE: `using() with auto-extension (automaticExtensionThreshold ${automaticExtensionThreshold} ms: extends ${automaticExtensionThreshold} ms before expiry)`,
    acquire(key) {
      return redlock.acquire([`rl:${key}`], DEFAULT_TTL);
    },
    acquireWait(key, waitMs) {
      return redlock.acquire([`rl:${key}`], DEFAULT_TTL, { retryCount: Math.ceil(waitMs / retryDelay) });
    },
    release(lock) {
      return lock.release();
    },
    /** using() is redlock's auto-extending form: the routine stays pending until releaseHeld. */
    hold(key, ttl) {
      return new Promise((resolve, reject) => {
        let finish;
        const routineDone = new Promise((r) => (finish = r));
        const using = redlock.using([`rl:${key}`], ttl, async (signal) => {
          resolve({ signal, release: () => (finish(), using) });
          await routineDone;
        });
        using.catch(reject);
      });
    },
    /** Resolves true if the lock was lost while held (extension failed, signal aborted). */
    async releaseHeld(handle) {
      const lost = handle.signal.aborted;
      try {
        await handle.release();
      } catch {
        return true; // release found the key gone or taken: the lease had run out
      }
      return lost;
    },
    renews: true,
  };
}

/** redis-semaphore Mutex, default options (lockTimeout 10 s, retryInterval 10 ms, refresh every 0.8 × lockTimeout). */
export function semaphoreAdapter(client) {
  return {
    name: 'redis-semaphore',
    settingsC: 'defaults (retryInterval 10 ms, lockTimeout 10 000 ms) with acquireTimeout 30 000 ms',
    settingsE: 'lockTimeout = ttl, default refreshInterval = 0.8 × lockTimeout (one setInterval per lock)',
    async acquire(key) {
      const mutex = new Mutex(client, key);
      await mutex.acquire();
      return mutex;
    },
    async acquireWait(key, waitMs) {
      const mutex = new Mutex(client, key, { acquireTimeout: waitMs });
      await mutex.acquire();
      return mutex;
    },
    release(mutex) {
      return mutex.release();
    },
    async hold(key, ttl, onLost) {
      const mutex = new Mutex(client, key, { lockTimeout: ttl, onLockLost: onLost });
      await mutex.acquire();
      return mutex;
    },
    async releaseHeld(mutex) {
      await mutex.release(); // a lost lock is reported through onLockLost
      return false;
    },
    renews: true,
    settingsF:
      '`new Semaphore(client, key, permits, { acquireTimeout: 30 000 })`, otherwise defaults (retryInterval 10 ms, lockTimeout 10 000 ms); ' +
      'acquire = Lua ZREMRANGEBYSCORE + ZCARD (+ ZADD + PEXPIRE), release = ZREM',
    /** Semaphore (sorted set `semaphore:<key>`), a new instance per acquisition as for Mutex. */
    async acquirePermit(key, permits, waitMs) {
      const semaphore = new Semaphore(client, key, permits, { acquireTimeout: waitMs });
      await semaphore.acquire();
      return semaphore;
    },
  };
}

/** nestjs-redis-lock: LockService from a Nest application context with LockModule.forRoot({ redis: url }). */
export function oursAdapter(locks) {
  return {
    name: 'nestjs-redis-lock',
    locks,
    settingsC: 'module defaults (ttl 30 000, pollInterval 1 000: waiters are woken by the release over pub/sub) with wait 30 000',
    settingsE: 'ttl = 3 000 per call, autoExtend default (renewed every ttl/3 by one scheduler, batched)',
    acquire(key) {
      return locks.acquire(key);
    },
    acquireWait(key, waitMs) {
      return locks.acquire(key, { wait: waitMs });
    },
    release(lock) {
      return lock.release();
    },
    hold(key, ttl) {
      return locks.acquire(key, { ttl, wait: 0 });
    },
    async releaseHeld(lock) {
      const lost = lock.signal.aborted;
      await lock.release();
      return lost;
    },
    renews: true,
    settingsF:
      '`locks.acquire(key, { permits, wait: 30 000 })`, module defaults otherwise (ttl 30 000, pollInterval 1 000: waiters are woken by a release over pub/sub)',
    acquirePermit(key, permits, waitMs) {
      return locks.acquire(key, { permits, wait: waitMs });
    },
  };
}

/** Extra row in C only: the same LockService with `fair: true` (queued waiters, handed the lock by the release). */
export function oursFairAdapter(locks) {
  return {
    ...oursAdapter(locks),
    name: 'nestjs-redis-lock (fair: true)',
    settingsC: 'as above plus fair: true per call (extra row, not used for the targets)',
    settingsE: undefined,
    settingsF: undefined,
    acquirePermit: undefined,
    acquireWait(key, waitMs) {
      return locks.acquire(key, { wait: waitMs, fair: true });
    },
  };
}
