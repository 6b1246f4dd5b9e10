import { spawn } from 'node:child_process';
import type { Redis } from 'ioredis';
import type { Lock } from '../../lib/index.js';
import { eventually } from './lock-app.js';

/**
 * Every command a Redis server runs, one line each, from `redis-cli monitor` (ioredis 6's own
 * monitor mode trips over other traffic on the server). Used to prove how many requests a
 * client sent, e.g. that a waiter handed a lock sends nothing more.
 */
export class RedisMonitor {
  private output = '';
  private constructor(private readonly child: ReturnType<typeof spawn>) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  static async start(port: number): Promise<RedisMonitor> {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'monitor'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const monitor = new RedisMonitor(child);
    await eventually(() => monitor.output.startsWith('OK'), 10_000, 'MONITOR to start');
    return monitor;
  }

  /**
   * Script calls sent by clients so far (not the commands scripts run, logged as "lua"), once a
   * PING sent now through `redis` has shown up: lines arrive in order, so everything before it is in.
   */
  async scriptCalls(redis: Redis): Promise<string[]> {
    const marker = `monitor-mark-${Math.random().toString(36).slice(2)}`;
    await redis.ping(marker);
    await eventually(() => this.output.includes(marker), 10_000, 'MONITOR to catch up');
    return this.output.split('\n').filter((line) => /\] "eval(sha)?" /.test(line) && !line.includes(' lua] '));
  }

  stop(): void {
    this.child.kill();
  }
}

/**
 * Releases `held`, awaits `waiting` and expects the waiter to have sent script calls before that
 * release (its attempts while queued) and none after it: the release handed it the lock, and it
 * holds it without asking Redis again. Returns the waiter's lock.
 */
export async function releaseAndExpectHandoff(monitor: RedisMonitor, redis: Redis, held: Lock, waiting: Promise<Lock>): Promise<Lock> {
  await held.release();
  const got = await waiting;
  const { before, after } = sentNothingAfterHandoff(await monitor.scriptCalls(redis), held.token, got.token);
  expect(before).toBeGreaterThan(0);
  expect(after).toEqual([]);
  return got;
}

/** Script calls of `waiterToken` before and after `releasedBy`'s last call. */
function sentNothingAfterHandoff(calls: string[], releasedBy: string, waiterToken: string): { before: number; after: string[] } {
  const releaseAt = calls.findLastIndex((line) => line.includes(releasedBy));
  if (releaseAt < 0) throw new Error(`no script call of ${releasedBy} in MONITOR output`);
  return {
    before: calls.slice(0, releaseAt).filter((line) => line.includes(waiterToken)).length,
    after: calls.slice(releaseAt + 1).filter((line) => line.includes(waiterToken)),
  };
}

/**
 * Releases `held`, awaits `waiting` (a caller of the same service that waited for this very
 * release) and expects the release to have handed it the lock (local succession): the only script
 * call that names the waiter is that release; the waiter itself asked Redis nothing, before or
 * after. Returns the waiter's lock.
 */
export async function releaseAndExpectSuccession(monitor: RedisMonitor, redis: Redis, held: Lock, waiting: Promise<Lock>): Promise<Lock> {
  await held.release();
  const got = await waiting;
  const naming = (await monitor.scriptCalls(redis)).filter((line) => line.includes(got.token));
  expect(naming).toHaveLength(1);
  expect(naming[0]).toContain(held.token);
  return got;
}
