import { driftAllowance, monotonicNow } from './clock.js';
import type { LockLostError } from './errors.js';
import type { HeapItem } from './indexed-heap.js';
import type { LeaseShape } from './stores/lock-store.js';

export type LeaseState = 'held' | 'releasing' | 'released' | 'lost';

/**
 * What Redis holds for one successful acquisition: one owner token over one or more keys, renewed
 * and released together. Internal; users see {@link Lock} handles, several of which may share a
 * lease through reentrancy (counted by `refs`).
 */
export class Lease implements HeapItem {
  state: LeaseState = 'held';
  /** Handles still holding this lease; Redis is released when it drops to 0. */
  refs = 1;
  /** Lease length used by renewals; `extend(ttl)` changes it. */
  ttl: number;
  /** Monotonic ms until which Redis is known to hold the lease (from when the request was sent). */
  expiresAt: number;
  /** Monotonic ms at which the keeper should next renew. */
  renewAt: number;
  /** A renewal is in flight; its reply decides the lease's fate. */
  renewing = false;
  heapIndex = -1;
  /** Monotonic ms when the lease was taken (for hold times in events). */
  readonly acquiredAt = monotonicNow();
  /** How it is held: fair (its release hands the key to the next queued waiter) or a semaphore permit. */
  shape: LeaseShape = {};
  private confirmedSentAt: number;
  /** The shortest expiry an extend sent at or before `pendingCapSentAt` may have set (see extendSent). */
  private pendingCap = Number.POSITIVE_INFINITY;
  private pendingCapSentAt = Number.NEGATIVE_INFINITY;
  /** The lease keeper's next look at this lease (renewal, expiry or maxHold), monotonic ms. */
  nextEventAt = Number.POSITIVE_INFINITY;

  /** Made on first use: most leases are released without anyone reading their signal. */
  private controller: AbortController | undefined;

  constructor(
    readonly keys: readonly string[],
    readonly token: string,
    /** Fencing token per key, in the order of `keys`. */
    readonly fences: readonly number[],
    ttl: number,
    sentAt: number,
    readonly autoExtend: boolean,
    /** Monotonic ms after which renewal stops (maxHold), if any. */
    readonly holdDeadline: number | undefined,
    readonly maxHold: number | undefined,
  ) {
    this.ttl = ttl;
    this.confirmedSentAt = sentAt;
    this.expiresAt = sentAt + ttl - driftAllowance(ttl);
    this.renewAt = sentAt + ttl / 3;
  }

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  /**
   * An extend to `ttl` was just sent. Redis may apply it at any moment from now on, before its
   * reply is read (or even when no reply comes), so an extend that shortens the lease counts at
   * once: the lease is valid only until `sentAt + ttl`, and no confirmation of an earlier-sent
   * renewal may lengthen it past that (Redis applies them in order, this extend last).
   */
  extendSent(sentAt: number, ttl: number): void {
    const expiry = sentAt + ttl - driftAllowance(ttl);
    this.expiresAt = Math.min(this.expiresAt, expiry);
    this.pendingCap = Math.min(this.pendingCap, expiry);
    this.pendingCapSentAt = Math.max(this.pendingCapSentAt, sentAt);
  }

  /** Records a confirmed renewal (or extend) that was sent at `sentAt`. */
  renewed(sentAt: number, ttl: number): void {
    // Redis applies renewals in the order they were sent, so the latest-sent confirmed one decides.
    if (sentAt < this.confirmedSentAt) return;
    this.confirmedSentAt = sentAt;
    let expiry = sentAt + ttl - driftAllowance(ttl);
    if (sentAt < this.pendingCapSentAt) {
      expiry = Math.min(expiry, this.pendingCap); // an extend sent later may still shorten it
    } else {
      this.pendingCap = Number.POSITIVE_INFINITY;
      this.pendingCapSentAt = Number.NEGATIVE_INFINITY;
    }
    this.expiresAt = expiry;
    this.renewAt = sentAt + ttl / 3;
  }

  /** Marks the lease lost and aborts its signal. Returns false when it was no longer held anyway. */
  lose(reason: LockLostError): boolean {
    if (this.state !== 'held') return false;
    this.state = 'lost';
    this.controller ??= new AbortController();
    this.controller.abort(reason);
    return true;
  }

  fenceOf(key: string): number {
    return this.fences[this.keys.indexOf(key)];
  }
}
