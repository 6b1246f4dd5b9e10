import { Module, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Redis } from 'ioredis';
import { LockModule, LockService, type LockModuleOptions } from '../../lib/index.js';
import { RedisServer, stopAllRedisServers } from './redis-server.js';

/** A Nest app context with its own LockModule (and so its own Redis connections). */
export interface LockApp {
  app: INestApplicationContext;
  locks: LockService;
  close(): Promise<void>;
}

/** Boots a real Nest application context importing `LockModule.forRoot(options)`. */
export async function startLockApp(options: LockModuleOptions, extra: { providers?: any[]; imports?: any[] } = {}): Promise<LockApp> {
  @Module({ imports: [LockModule.forRoot(options), ...(extra.imports ?? [])], providers: extra.providers ?? [] })
  class TestAppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [TestAppModule] }).compile();
  const app = await moduleRef.init();
  return { app, locks: app.get(LockService), close: () => app.close() };
}

/** Resolves when the signal aborts (or at once if it already has), with its reason. */
export function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
}

/** Polls `check` until it returns true, failing after `ms` (a deadline, not a timing assertion). */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** One private Redis, a plain client on it, and two apps on it, each with its own LockService. */
export interface TwoApps {
  server: RedisServer;
  redis: Redis;
  appA: LockApp;
  appB: LockApp;
}

/** Starts a TwoApps with these module options (besides `redis`); whatever did start is closed if the rest fails. */
export async function startTwoApps(options: Omit<LockModuleOptions, 'redis'>): Promise<TwoApps> {
  const started: Partial<TwoApps> = {};
  try {
    started.server = await RedisServer.start();
    started.redis = started.server.client();
    started.appA = await startLockApp({ ...options, redis: started.server.url });
    started.appB = await startLockApp({ ...options, redis: started.server.url });
    return started as TwoApps;
  } catch (error) {
    await stopTwoApps(started);
    throw error;
  }
}

/** Closes what startTwoApps started (any part of it), then every Redis server this test file started. */
export async function stopTwoApps(apps: Partial<TwoApps>): Promise<void> {
  await apps.appA?.close();
  await apps.appB?.close();
  await apps.redis?.quit();
  await stopAllRedisServers();
}
