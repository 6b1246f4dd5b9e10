import { monotonicToEpoch } from './clock.js';
import { LockLostError } from './errors.js';
import { MESSAGES } from './lock.messages.js';
/**
 * A held lock, as returned by `acquire`, `tryAcquire` and given to `withLock` callbacks.
 *
 * One handle may span several leases: keys this call acquired itself, plus keys the current call
 * chain already held (reentrancy), which it shares with the outer holder.
 */
export class Lock {
    /** @internal Locks are made by LockService. */
    constructor(keys, 
    /** The lease that holds each key, in the order of `keys`. */
    leaseOfKey, 
    /** The lease this call acquired itself, if any (the rest are shared with outer holders). */
    ownLease, owner) {
        this.owner = owner;
        this.released = false;
        this.keys = Object.freeze([...keys]);
        this.leases = [...new Set(leaseOfKey)];
        // The token is the one this call created if it created one, else the outer holder's.
        this.token = (ownLease ?? this.leases[0]).token;
        const fences = {};
        keys.forEach((key, i) => (fences[key] = leaseOfKey[i].fenceOf(key)));
        this.fences = Object.freeze(fences);
        this.fence = fences[keys[0]];
    }
    /** Aborts, with a `LockLostError` as reason, when the lease can no longer be guaranteed. */
    get signal() {
        if (this.leases.length === 1)
            return this.leases[0].signal;
        this.combinedSignal ??= AbortSignal.any(this.leases.map((lease) => lease.signal));
        return this.combinedSignal;
    }
    /** Epoch ms until which the lease is known to be held (from when the last renewal was sent). */
    get expiresAt() {
        return monotonicToEpoch(Math.min(...this.leases.map((lease) => lease.expiresAt)));
    }
    /** True until `release()` is called on this handle. */
    get isReleased() {
        return this.released;
    }
    /**
     * Renews the lease now, to `ttl` ms (default: the lock's ttl, which `ttl` also replaces for later
     * automatic renewals). Throws `LockLostError` if the lock is no longer held.
     */
    async extend(ttl) {
        if (this.released)
            throw new LockLostError(MESSAGES.lost(this.keys, MESSAGES.lostReleased), this.keys);
        await Promise.all(this.leases.map((lease) => this.owner.extendLease(lease, ttl)));
    }
    /** Gives the lock up. A second call is a no-op; it never deletes another owner's lock. */
    async release() {
        if (this.released)
            return;
        this.released = true;
        await Promise.all(this.leases.map((lease) => this.owner.unref(lease)));
    }
    async [Symbol.asyncDispose]() {
        await this.release();
    }
}
//# sourceMappingURL=lock.js.map