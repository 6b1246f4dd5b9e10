import { monotonicNow } from './clock.js';
import { IndexedMinHeap } from './indexed-heap.js';
/** Renewals due this close together go out in the same batch (renewing a little early is always safe). */
const COALESCE_MS = 20;
/**
 * One scheduler for every lease a LockService holds: a single timer armed for the earliest event
 * (renewal, expiry or maxHold) in an indexed heap, instead of a timer per lock. Renewals that fall
 * due together are sent as one batch.
 */
export class LeaseKeeper {
    constructor(hooks) {
        this.hooks = hooks;
        this.heap = new IndexedMinHeap((lease) => lease.nextEventAt);
        this.timerAt = Number.POSITIVE_INFINITY;
        this.batches = 0;
        this.renewals = 0;
    }
    /** Leases currently scheduled. */
    get size() {
        return this.heap.size;
    }
    /** Counters for tests and benchmarks: batches sent, leases renewed in them, and armed timers (0 or 1). */
    get stats() {
        return { scheduled: this.heap.size, renewalBatches: this.batches, renewalsSent: this.renewals, timers: this.timer ? 1 : 0 };
    }
    /** Starts watching a lease (new, or just renewed/extended). */
    schedule(lease) {
        this.place(lease);
        this.arm();
    }
    /** Stops watching a lease; after its release nothing of it stays scheduled. */
    forget(lease) {
        this.heap.remove(lease);
        this.arm();
    }
    /** Every scheduled lease, for shutdown. */
    drain() {
        const leases = [];
        for (let lease = this.heap.pop(); lease; lease = this.heap.pop())
            leases.push(lease);
        this.arm();
        return leases;
    }
    place(lease) {
        let next = lease.expiresAt;
        if (lease.holdDeadline !== undefined)
            next = Math.min(next, lease.holdDeadline);
        if (lease.autoExtend && !lease.renewing)
            next = Math.min(next, lease.renewAt);
        lease.nextEventAt = next;
        this.heap.upsert(lease);
    }
    arm() {
        const top = this.heap.peek();
        if (!top) {
            this.disarm();
            return;
        }
        if (this.timer && this.timerAt <= top.nextEventAt)
            return;
        this.disarm();
        this.timerAt = top.nextEventAt;
        this.timer = setTimeout(() => this.tick(), Math.max(0, Math.ceil(top.nextEventAt - monotonicNow())));
        // The Redis connection keeps the process alive while locks are held; this timer need not.
        this.timer.unref();
    }
    disarm() {
        if (this.timer)
            clearTimeout(this.timer);
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
    }
    tick() {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        const now = monotonicNow();
        const due = [];
        for (let top = this.heap.peek(); top && top.nextEventAt <= now + COALESCE_MS; top = this.heap.peek()) {
            due.push(this.heap.pop());
        }
        const toRenew = [];
        for (const lease of due) {
            if (lease.state !== 'held')
                continue;
            if (lease.holdDeadline !== undefined && now >= lease.holdDeadline) {
                this.hooks.lost(lease, 'maxHold');
                continue;
            }
            // Checked before renewing: an event loop blocked past the lease must be reported, never
            // papered over by a renewal that would silently re-take an expired key.
            if (now >= lease.expiresAt) {
                this.hooks.lost(lease, lease.autoExtend ? 'unreachable' : 'expired');
                continue;
            }
            if (lease.autoExtend && !lease.renewing && lease.renewAt <= now + Math.min(COALESCE_MS, lease.ttl / 10)) {
                lease.renewing = true;
                toRenew.push(lease);
            }
            this.place(lease);
        }
        if (toRenew.length > 0)
            this.renew(toRenew, now);
        this.arm();
    }
    renew(leases, sentAt) {
        this.batches += 1;
        this.renewals += leases.length;
        const ttls = leases.map((lease) => lease.ttl);
        const settle = (results) => {
            const now = monotonicNow();
            leases.forEach((lease, i) => {
                if (lease.state !== 'held' || !lease.renewing)
                    return; // released or lost meanwhile
                lease.renewing = false;
                const result = results instanceof Error ? results : results[i];
                if (result === false) {
                    this.heap.remove(lease);
                    this.hooks.lost(lease, 'owner');
                    return;
                }
                if (result === true) {
                    // A confirmation that arrives after the old lease ran out proves nothing about the gap.
                    if (now >= lease.expiresAt) {
                        this.heap.remove(lease);
                        this.hooks.lost(lease, 'unreachable');
                        return;
                    }
                    lease.renewed(sentAt, ttls[i]);
                }
                else {
                    // Unknown outcome (connection trouble): try again soon; the expiry event still stands.
                    lease.renewAt = now + Math.max(10, Math.min(lease.ttl / 10, 1_000));
                }
                this.place(lease);
            });
            this.arm();
        };
        // Never an unhandled rejection: a failed batch is an unknown outcome for each lease in it.
        this.hooks.renew(leases).then(settle, (error) => settle(error instanceof Error ? error : new Error(String(error))));
    }
}
//# sourceMappingURL=lease-keeper.js.map