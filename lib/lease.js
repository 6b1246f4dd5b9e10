import { driftAllowance } from './clock.js';
/**
 * What Redis holds for one successful acquisition: one owner token over one or more keys, renewed
 * and released together. Internal; users see {@link Lock} handles, several of which may share a
 * lease through reentrancy (counted by `refs`).
 */
export class Lease {
    constructor(keys, token, 
    /** Fencing token per key, in the order of `keys`. */
    fences, ttl, sentAt, autoExtend, 
    /** Monotonic ms after which renewal stops (maxHold), if any. */
    holdDeadline, maxHold) {
        this.keys = keys;
        this.token = token;
        this.fences = fences;
        this.autoExtend = autoExtend;
        this.holdDeadline = holdDeadline;
        this.maxHold = maxHold;
        this.state = 'held';
        /** Handles still holding this lease; Redis is released when it drops to 0. */
        this.refs = 1;
        /** A renewal is in flight; its reply decides the lease's fate. */
        this.renewing = false;
        this.heapIndex = -1;
        /** Taken in fair mode: its release hands the key to the next queued waiter. */
        this.fair = false;
        /** The lease keeper's next look at this lease (renewal, expiry or maxHold), monotonic ms. */
        this.nextEventAt = Number.POSITIVE_INFINITY;
        this.controller = new AbortController();
        this.ttl = ttl;
        this.confirmedSentAt = sentAt;
        this.expiresAt = sentAt + ttl - driftAllowance(ttl);
        this.renewAt = sentAt + ttl / 3;
    }
    get signal() {
        return this.controller.signal;
    }
    /** Records a confirmed renewal (or extend) that was sent at `sentAt`. */
    renewed(sentAt, ttl) {
        // Redis applies renewals in the order they were sent, so the latest-sent confirmed one decides.
        if (sentAt < this.confirmedSentAt)
            return;
        this.confirmedSentAt = sentAt;
        this.expiresAt = sentAt + ttl - driftAllowance(ttl);
        this.renewAt = sentAt + ttl / 3;
    }
    /** Marks the lease lost and aborts its signal. Returns false when it was no longer held anyway. */
    lose(reason) {
        if (this.state !== 'held')
            return false;
        this.state = 'lost';
        this.controller.abort(reason);
        return true;
    }
    fenceOf(key) {
        return this.fences[this.keys.indexOf(key)];
    }
}
//# sourceMappingURL=lease.js.map