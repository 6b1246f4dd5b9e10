import { monotonicToEpoch } from './clock.js';
import { LockLostError } from './errors.js';
import type { Lease } from './lease.js';
import { MESSAGES } from './lock.messages.js';

/** What a {@link Lock} needs from the service that made it. */
export interface LeaseOwner {
  /** Drops one reference; the lease is released in Redis when none remain. Never rejects. */
  unref(lease: Lease): Promise<void>;
  /** Renews now; rejects with LockLostError if the lease is gone. */
  extendLease(lease: Lease, ttl: number | undefined): Promise<void>;
}

/**
 * A held lock, as returned by `acquire`, `tryAcquire` and given to `withLock` callbacks.
 *
 * One handle may span several leases: keys this call acquired itself, plus keys the current call
 * chain already held (reentrancy), which it shares with the outer holder.
 */
export class Lock implements AsyncDisposable {
  /** The keys held, without prefix, in the order asked. */
  readonly keys: readonly string[];
  /** This holder's owner token: 128 random bits, hex. */
  readonly token: string;
  /**
   * Fencing token of the first key: strictly larger for every new holder of that key. Pass it to
   * the resource you protect and have it reject writes carrying a smaller fence than it has seen.
   */
  readonly fence: number;
  private released = false;
  private readonly leases: readonly Lease[];
  private readonly leaseOfKey: readonly Lease[];
  private fencesByKey: Readonly<Record<string, number>> | undefined;
  private combinedSignal: AbortSignal | undefined;

  /** @internal Locks are made by LockService. */
  constructor(
    keys: readonly string[],
    /** The lease that holds each key, in the order of `keys`. */
    leaseOfKey: readonly Lease[],
    /** The lease this call acquired itself, if any (the rest are shared with outer holders). */
    ownLease: Lease | undefined,
    private readonly owner: LeaseOwner,
  ) {
    this.keys = Object.freeze([...keys]);
    this.leaseOfKey = leaseOfKey;
    this.leases = leaseOfKey.length === 1 ? leaseOfKey : [...new Set(leaseOfKey)];
    // The token is the one this call created if it created one, else the outer holder's.
    this.token = (ownLease ?? this.leases[0]).token;
    this.fence = leaseOfKey[0].fenceOf(keys[0]);
  }

  /** Fencing token per key (for multi-key locks). */
  get fences(): Readonly<Record<string, number>> {
    if (!this.fencesByKey) {
      // Built on demand: an object keyed by user keys is costly to make on every acquire.
      // fromEntries defines own properties, so even a key named "__proto__" is just a key.
      this.fencesByKey = Object.freeze(Object.fromEntries(this.keys.map((key, i) => [key, this.leaseOfKey[i].fenceOf(key)])));
    }
    return this.fencesByKey;
  }

  /** Aborts, with a `LockLostError` as reason, when the lease can no longer be guaranteed. */
  get signal(): AbortSignal {
    if (this.leases.length === 1) return this.leases[0].signal;
    this.combinedSignal ??= AbortSignal.any(this.leases.map((lease) => lease.signal));
    return this.combinedSignal;
  }

  /** Epoch ms until which the lease is known to be held (from when the last renewal was sent). */
  get expiresAt(): number {
    return monotonicToEpoch(Math.min(...this.leases.map((lease) => lease.expiresAt)));
  }

  /** True until `release()` is called on this handle. */
  get isReleased(): boolean {
    return this.released;
  }

  /**
   * Renews the lease now, to `ttl` ms (default: the lock's ttl, which `ttl` also replaces for later
   * automatic renewals). Throws `LockLostError` if the lock is no longer held.
   */
  async extend(ttl?: number): Promise<void> {
    if (this.released) throw new LockLostError(MESSAGES.lost(this.keys, MESSAGES.lostReleased), this.keys);
    await Promise.all(this.leases.map((lease) => this.owner.extendLease(lease, ttl)));
  }

  /** Gives the lock up. A second call is a no-op; it never deletes another owner's lock. */
  release(): Promise<void> {
    // Not async, and one lease (the usual case) without Promise.all: fewer promises per release.
    // unref never rejects, nor throws (it is an async function).
    if (this.released) return Promise.resolve();
    this.released = true;
    if (this.leases.length === 1) return this.owner.unref(this.leases[0]);
    return Promise.all(this.leases.map((lease) => this.owner.unref(lease))).then(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}
