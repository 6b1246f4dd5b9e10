/** Something that happened to a lock, reported to `onEvent` (module option). Tokens are never included. */
export type LockEvent =
  | {
      type: 'acquired';
      keys: readonly string[];
      /** Fencing token per key, in the order of `keys`. */
      fences: readonly number[];
      /** Time spent waiting for the lock, ms. */
      waitedMs: number;
    }
  | { type: 'released'; keys: readonly string[]; /** ms from acquisition to release */ heldMs: number }
  | {
      type: 'extended';
      keys: readonly string[];
      ttl: number;
      /** true for the background renewal, false for `lock.extend()` */
      automatic: boolean;
    }
  | { type: 'lost'; keys: readonly string[]; heldMs: number; /** the LockLostError its signal aborted with */ error: Error }
  | {
      type: 'busy';
      keys: readonly string[];
      waitedMs: number;
      /** `'timedOut'`: rejected with LockNotAcquiredError; `'gaveUp'`: tryAcquire returned null or @WithLock skipped */
      outcome: 'timedOut' | 'gaveUp';
    };

/** Receives lock events. Called synchronously; keep it cheap. Exceptions it throws are logged and ignored. */
export type LockEventListener = (event: LockEvent) => void;
