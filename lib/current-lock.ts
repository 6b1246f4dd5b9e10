import { AsyncLocalStorage } from 'node:async_hooks';
import type { Lock } from './lock.js';

const innermost = new AsyncLocalStorage<Lock>();

/**
 * The lock of the innermost `withLock` callback or `@WithLock` method running in this async call
 * chain, or `undefined` outside any. Lets a decorated method watch `currentLock()?.signal` or read
 * its `fence` without changing its signature.
 */
export function currentLock(): Lock | undefined {
  return innermost.getStore();
}

/** @internal Runs `fn` with `lock` as the current lock. */
export function runWithCurrentLock<T>(lock: Lock, fn: () => T): T {
  return innermost.run(lock, fn);
}
