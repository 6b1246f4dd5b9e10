import { ConflictException } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  Lock,
  LockKeyError,
  LockLostError,
  LockNotAcquiredError,
  LockUnavailableError,
} from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { aborted, startLockApp, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';

describe('LockService on one Redis', () => {
  let server: RedisServer;
  let appA: LockApp;
  let appB: LockApp;
  let redis: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = server.client();
    appA = await startLockApp({ redis: server.url, wait: 0 });
    appB = await startLockApp({ redis: server.url, wait: 0 });
  });

  afterAll(async () => {
    await appA?.close();
    await appB?.close();
    await redis?.quit();
    await stopAllRedisServers();
  });

  it('acquires and releases, and the key is visible in Redis under the prefix while held', async () => {
    const lock = await appA.locks.acquire('order:1');
    expect(lock).toBeInstanceOf(Lock);
    expect(lock.keys).toEqual(['order:1']);
    expect(lock.token).toMatch(/^[0-9a-f]{60}$/);
    expect(ownerOf(await redis.get('lock:{order:1}'))).toBe(lock.token);
    expect(await appB.locks.isLocked('order:1')).toBe(true);
    await lock.release();
    expect(await appB.locks.isLocked('order:1')).toBe(false);
    expect(await redis.exists('lock:{order:1}')).toBe(0);
  });

  it("works through an ioredis client with its own keyPrefix: every key of the lock carries it, and apps sharing it exclude each other and hand over", async () => {
    const connection = { host: server.host, port: server.port, keyPrefix: 'app1:' };
    const first = await startLockApp({ redis: connection, wait: 0 });
    const second = await startLockApp({ redis: connection, wait: 0 });
    try {
      const lock = await first.locks.acquire('order:prefixed');
      expect(ownerOf(await redis.get('app1:lock:{order:prefixed}'))).toBe(lock.token);
      expect(await redis.exists('lock:{order:prefixed}')).toBe(0);
      expect(await second.locks.tryAcquire('order:prefixed')).toBeNull();
      // Another prefix is another namespace.
      const unprefixed = await appA.locks.acquire('order:prefixed');
      await unprefixed.release();
      const waiting = second.locks.acquire('order:prefixed', { wait: 10_000 });
      await lock.release();
      const next = await waiting;
      expect(next.fence).toBeGreaterThan(lock.fence);
      expect(ownerOf(await redis.get('app1:lock:{order:prefixed}'))).toBe(next.token);
      await next.release();
      expect(await redis.exists('app1:lock:{order:prefixed}')).toBe(0);
      // What is left (the "wanted" marker of the wait) expires by itself.
      for (const key of await redis.keys('app1:lock:{order:prefixed}*')) expect(await redis.pttl(key)).toBeGreaterThan(0);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('gives every acquisition its own token', async () => {
    const first = await appA.locks.acquire('token:1');
    await first.release();
    const second = await appA.locks.acquire('token:1');
    await second.release();
    expect(second.token).not.toBe(first.token);
  });

  it('tryAcquire returns null while another app holds the key, and the lock once it is free', async () => {
    const held = await appA.locks.acquire('order:2');
    expect(await appB.locks.tryAcquire('order:2')).toBeNull();
    await held.release();
    const mine = await appB.locks.tryAcquire('order:2');
    expect(mine).toBeInstanceOf(Lock);
    await mine?.release();
  });

  it('treats a second release as a no-op that does not free the next holder', async () => {
    const first = await appA.locks.acquire('order:3');
    await first.release();
    const next = await appB.locks.acquire('order:3');
    await expect(first.release()).resolves.toBeUndefined();
    expect(ownerOf(await redis.get('lock:{order:3}'))).toBe(next.token);
    await next.release();
  });

  it('never lets a holder whose lease expired release or extend the next holder\'s lock', async () => {
    const stale = await appA.locks.acquire('order:4', { ttl: 200, autoExtend: false });
    // The signal aborts when the lease can no longer be guaranteed (here: it ran out).
    expect(await aborted(stale.signal)).toBeInstanceOf(LockLostError);
    const next = await appB.locks.acquire('order:4', { wait: 10_000 });
    await expect(stale.extend()).rejects.toBeInstanceOf(LockLostError);
    await stale.release();
    expect(ownerOf(await redis.get('lock:{order:4}'))).toBe(next.token);
    expect(next.fence).toBeGreaterThan(stale.fence);
    await next.release();
  });

  it('an extend that shortens the lease counts from when it is sent, before its reply (or if none comes)', async () => {
    // Found by the safety checker (redlock seed 7002): the holder's event loop was blocked right
    // after it sent extend(200) on a 10 s lease; Redis applied it, the key expired and was taken,
    // while the holder still counted on the 10 s lease until it read the reply.
    const lock = await appA.locks.acquire('extend:shorter', { ttl: 10_000, autoExtend: false });
    const sentBefore = Date.now();
    const extending = lock.extend(200);
    expect(lock.expiresAt).toBeLessThanOrEqual(Date.now() + 200);
    expect(lock.expiresAt).toBeGreaterThan(sentBefore);
    await extending;
    expect(lock.expiresAt).toBeLessThanOrEqual(Date.now() + 200);
    // A longer extend is counted only once confirmed, from when it was sent.
    await lock.extend(10_000);
    expect(lock.expiresAt).toBeGreaterThan(Date.now() + 5_000);
    await lock.release();
  });

  it('withLock returns the callback value and releases afterwards', async () => {
    const result = await appA.locks.withLock('order:5', async (lock) => {
      expect(await appB.locks.isLocked('order:5')).toBe(true);
      return `done with ${lock.keys[0]}`;
    });
    expect(result).toBe('done with order:5');
    expect(await appB.locks.isLocked('order:5')).toBe(false);
  });

  it('withLock releases when the callback throws and rethrows the same error', async () => {
    const failure = new Error('boom');
    await expect(
      appA.locks.withLock('order:6', () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await appB.locks.isLocked('order:6')).toBe(false);
  });

  it('takes several keys all or nothing', async () => {
    const b = await appB.locks.acquire('acct:b');
    expect(await appA.locks.tryAcquire(['acct:a', 'acct:b', 'acct:c'])).toBeNull();
    expect(await appB.locks.isLocked('acct:a')).toBe(false);
    expect(await appB.locks.isLocked('acct:c')).toBe(false);
    await b.release();
    const all = await appA.locks.acquire(['acct:a', 'acct:b', 'acct:c']);
    expect(all.keys).toEqual(['acct:a', 'acct:b', 'acct:c']);
    expect(Object.keys(all.fences)).toEqual(['acct:a', 'acct:b', 'acct:c']);
    for (const key of all.keys) expect(await appB.locks.isLocked(key)).toBe(true);
    await all.release();
    for (const key of all.keys) expect(await appB.locks.isLocked(key)).toBe(false);
  });

  it('fails a wait that runs out with LockNotAcquiredError carrying keys and waitedMs (HTTP 409)', async () => {
    const held = await appA.locks.acquire('order:7');
    const error = await appB.locks.acquire('order:7', { wait: 150 }).catch((e: unknown) => e);
    await held.release();
    expect(error).toBeInstanceOf(LockNotAcquiredError);
    expect(error).toBeInstanceOf(ConflictException);
    const notAcquired = error as LockNotAcquiredError;
    expect(notAcquired.keys).toEqual(['order:7']);
    expect(notAcquired.waitedMs).toBeGreaterThanOrEqual(150);
    expect(notAcquired.getStatus()).toBe(409);
    expect(notAcquired.message).toContain('"order:7"');
    expect(notAcquired.message).toContain('wait=150');
    expect(notAcquired.getResponse()).toMatchObject({ statusCode: 409, keys: ['order:7'] });
  });

  it('waits for a busy lock and gets it when the holder releases', async () => {
    const held = await appA.locks.acquire('order:8');
    const waiting = appB.locks.acquire('order:8', { wait: 20_000 });
    setTimeout(() => void held.release(), 50);
    const got = await waiting;
    expect(got.fence).toBeGreaterThan(held.fence);
    await got.release();
  });

  it('cancels a wait through the signal option, leaving no waiter behind', async () => {
    const held = await appA.locks.acquire('order:9');
    const controller = new AbortController();
    const waiting = appB.locks.acquire('order:9', { wait: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('user gave up')), 30);
    await expect(waiting).rejects.toThrow('user gave up');
    expect(appB.locks.leaseStats.waiters).toBe(0);
    await held.release();
  });

  it('releases at the end of an `await using` scope', async () => {
    {
      await using lock = await appA.locks.acquire('order:10');
      expect(await appB.locks.isLocked(lock.keys[0])).toBe(true);
    }
    expect(await appB.locks.isLocked('order:10')).toBe(false);
  });

  it('hands out strictly increasing fences across holders, apps and an expiry', async () => {
    const fences: number[] = [];
    for (const service of [appA.locks, appB.locks, appA.locks]) {
      const lock = await service.acquire('fence:1');
      fences.push(lock.fence);
      await lock.release();
    }
    const expiring = await appA.locks.acquire('fence:1', { ttl: 100, autoExtend: false });
    fences.push(expiring.fence);
    await aborted(expiring.signal);
    const after = await appB.locks.acquire('fence:1', { wait: 10_000 });
    fences.push(after.fence);
    await after.release();
    await expiring.release();
    for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1]);
  });

  it('rejects bad keys with LockKeyError before touching Redis', async () => {
    for (const bad of ['', 42, null, undefined, [], ['ok', ''], 'x'.repeat(1025)]) {
      await expect(appA.locks.acquire(bad as string)).rejects.toBeInstanceOf(LockKeyError);
    }
    await expect(appA.locks.isLocked('')).rejects.toBeInstanceOf(LockKeyError);
  });

  it('reports an unreachable Redis as LockUnavailableError instead of hanging', async () => {
    const down = await RedisServer.start();
    const app = await startLockApp({ redis: { port: down.port, host: down.host, maxRetriesPerRequest: 1 }, wait: 0 });
    await down.stop();
    await expect(app.locks.acquire('order:11', { wait: 300 })).rejects.toBeInstanceOf(LockUnavailableError);
    await expect(app.locks.isLocked('order:11')).rejects.toBeInstanceOf(LockUnavailableError);
    await app.close();
  });
});
