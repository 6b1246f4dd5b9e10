import { monotonicNow } from './clock.js';

/** Thrown by {@link withTimeout} when the promise did not settle in time. */
export class TimeoutError extends Error {
  constructor(ms: number) {
    super(`no reply within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * How often pending bounds are checked. A bound fires up to this late; every bound in this library
 * is 100 ms or more (most are 1 s or more) and only ends a wait that Redis did not answer, so the
 * lateness never matters, while one shared timer saves a timer per Redis call on the hot path.
 */
export const BOUND_CHECK_INTERVAL_MS = 10;

interface Bound {
  due: number;
  ms: number;
  reject: (error: Error) => void;
}

/** Bounds not yet settled, checked by one interval timer that runs only while any exist. */
const pending = new Set<Bound>();
let checker: NodeJS.Timeout | undefined;

function checkBounds(): void {
  if (pending.size === 0) {
    clearInterval(checker);
    checker = undefined;
    return;
  }
  const now = monotonicNow();
  for (const bound of pending) {
    if (bound.due > now) continue;
    pending.delete(bound);
    bound.reject(new TimeoutError(Math.round(bound.ms)));
  }
}

/**
 * Bounds a Redis call: every call made on a user's behalf must end by its deadline, whatever the
 * connection does (ioredis queues commands while reconnecting). Like a timer per call (which keeps
 * the process alive until the call settles or its bound passes), but one timer serves them all.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const bound: Bound = { due: monotonicNow() + Math.max(0, ms), ms, reject };
    pending.add(bound);
    checker ??= setInterval(checkBounds, BOUND_CHECK_INTERVAL_MS);
    promise.then(
      (value) => {
        pending.delete(bound);
        resolve(value);
      },
      (error: unknown) => {
        pending.delete(bound);
        reject(error);
      },
    );
  });
}
