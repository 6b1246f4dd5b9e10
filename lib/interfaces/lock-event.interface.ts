import type { ResignReason } from './leadership.interface.js';

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
  | {
      type: 'lost';
      keys: readonly string[];
      heldMs: number;
      /** the LockLostError its signal aborted with */
      error: Error;
      /** unset for a lock; `true` when a leadership (of `LockService.lead` / `@Leader`) was lost */
      leader?: undefined;
    }
  | LeaderEvent
  | {
      type: 'busy';
      keys: readonly string[];
      waitedMs: number;
      /** `'timedOut'`: rejected with LockNotAcquiredError; `'gaveUp'`: tryAcquire returned null or @WithLock skipped */
      outcome: 'timedOut' | 'gaveUp';
    };

/**
 * Leader election (`LockService.lead`, `@Leader`): `elected` when this instance becomes leader,
 * `lost` when its leadership lease is lost (besides the lock's own `lost` event), `resigned` when it
 * gives leadership up (`reason` says why). `keys` is the election key.
 */
export type LeaderEvent =
  | { type: 'elected'; keys: readonly string[]; leader: true; /** the new leader's epoch (its fence) */ epoch: number; /** ms campaigning before this election */ waitedMs: number }
  | { type: 'lost'; keys: readonly string[]; leader: true; epoch: number; /** ms led */ heldMs: number; /** why: the lock's LockLostError */ error: Error }
  | { type: 'resigned'; keys: readonly string[]; leader: true; epoch: number; /** ms led */ heldMs: number; reason: ResignReason };

/** Receives lock events. Called synchronously; keep it cheap. Exceptions it throws are logged and ignored. */
export type LockEventListener = (event: LockEvent) => void;
