import { timerDelay } from './clock.js';

/** Thrown by {@link withTimeout} when the promise did not settle in time. */
export class TimeoutError extends Error {
  constructor(ms: number) {
    super(`no reply within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Bounds a Redis call: every call made on a user's behalf must end by its deadline, whatever the
 * connection does (ioredis queues commands while reconnecting). The timer is cleared on settle.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TimeoutError(Math.round(ms))), timerDelay(ms));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
