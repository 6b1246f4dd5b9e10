import { Module, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LockModule, LockService, type LockModuleOptions } from '../../lib/index.js';

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
