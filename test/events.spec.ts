import { Redis } from 'ioredis';
import { LockLostError, type LockEvent } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';

describe('lock events (onEvent)', () => {
  let server: RedisServer;
  let redis: Redis;
  let app: LockApp;
  let other: LockApp;
  const events: LockEvent[] = [];
  const ofKey = (key: string) => events.filter((event) => event.keys.includes(key));

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = server.client();
    app = await startLockApp({ redis: server.url, wait: 0, onEvent: (event) => events.push(event) });
    other = await startLockApp({ redis: server.url, wait: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await other?.close();
    await redis?.quit();
    await stopAllRedisServers();
  });

  it('reports acquired, extended (by hand and automatically) and released, in order, with payloads', async () => {
    // Counted before the lock exists: on a slow machine its first automatic renewal may already go out during extend().
    const sent = app.locks.leaseStats.renewalsSent;
    const lock = await app.locks.acquire('ev:1', { ttl: 600 });
    await lock.extend(900);
    await eventually(() => ofKey('ev:1').some((e) => e.type === 'extended' && e.automatic), 20_000, 'an automatic renewal');
    expect(app.locks.leaseStats.renewalsSent).toBeGreaterThan(sent);
    await lock.release();
    const seen = ofKey('ev:1');
    expect(seen.map((e) => e.type)).toEqual(['acquired', 'extended', ...seen.slice(2, -1).map(() => 'extended'), 'released']);
    expect(seen[0]).toMatchObject({ type: 'acquired', keys: ['ev:1'], fences: [lock.fence] });
    expect(seen[1]).toMatchObject({ type: 'extended', ttl: 900, automatic: false });
    const released = seen[seen.length - 1];
    expect(released.type === 'released' && released.heldMs).toBeGreaterThanOrEqual(0);
    // Owner tokens never travel in events.
    expect(JSON.stringify(seen)).not.toContain(lock.token);
  });

  it('reports busy when a wait times out and when tryAcquire gives up', async () => {
    const held = await other.locks.acquire('ev:2');
    await expect(app.locks.acquire('ev:2', { wait: 50 })).rejects.toThrow('still busy');
    expect(await app.locks.tryAcquire('ev:2')).toBeNull();
    await held.release();
    const busy = ofKey('ev:2').filter((e) => e.type === 'busy');
    expect(busy.map((e) => e.type === 'busy' && e.outcome)).toEqual(['timedOut', 'gaveUp']);
  });

  it('reports a lost lock with its LockLostError', async () => {
    const lock = await app.locks.acquire('ev:3', { ttl: 600 });
    await redis.del('lock:{ev:3}');
    await aborted(lock.signal);
    const lost = ofKey('ev:3').find((e) => e.type === 'lost');
    expect(lost && lost.type === 'lost' && lost.error).toBeInstanceOf(LockLostError);
    await lock.release();
    expect(ofKey('ev:3').map((e) => e.type)).not.toContain('released');
  });

  it('keeps locking when the listener throws', async () => {
    const throwing = await startLockApp({
      redis: server.url,
      onEvent: () => {
        throw new Error('listener bug');
      },
    });
    const lock = await throwing.locks.acquire('ev:4');
    await lock.release();
    expect(await throwing.locks.isLocked('ev:4')).toBe(false);
    await throwing.close();
  });
});
