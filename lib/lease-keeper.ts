import { monotonicNow, timerDelay } from './clock.js';
import { IndexedMinHeap } from './indexed-heap.js';
import type { Lease } from './lease.js';

/** Why the keeper gave up on a lease. */
export type LeaseLossReason = 'owner' | 'unreachable' | 'expired' | 'maxHold';

export interface LeaseKeeperHooks {
  /** Renews every lease in one round trip. Per lease: true renewed, false no longer ours, Error unknown. */
  renew(leases: readonly Lease[]): Promise<ReadonlyArray<boolean | Error>>;
  /** The lease can no longer be guaranteed; called once per lease, after it left the schedule. */
  lost(lease: Lease, reason: LeaseLossReason): void;
  /** A background renewal was confirmed. */
  renewed(lease: Lease): void;
}

/** Renewals due this close together go out in the same batch (renewing a little early is always safe). */
const COALESCE_MS = 20;

/**
 * One scheduler for every lease a LockService holds: a single timer armed for the earliest event
 * (renewal, expiry or maxHold) in an indexed heap, instead of a timer per lock. Renewals that fall
 * due together are sent as one batch.
 */
export class LeaseKeeper {
  private readonly heap = new IndexedMinHeap<Lease>((lease) => lease.nextEventAt);
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private batches = 0;
  private renewals = 0;

  constructor(private readonly hooks: LeaseKeeperHooks) {}

  /** Leases currently scheduled. */
  get size(): number {
    return this.heap.size;
  }

  /** Counters for tests and benchmarks: batches sent, leases renewed in them, and armed timers (0 or 1). */
  get stats(): { scheduled: number; renewalBatches: number; renewalsSent: number; timers: number } {
    return { scheduled: this.heap.size, renewalBatches: this.batches, renewalsSent: this.renewals, timers: this.timer ? 1 : 0 };
  }

  /** Starts watching a lease (new, or just renewed/extended). */
  schedule(lease: Lease): void {
    this.place(lease);
    this.arm();
  }

  /** Stops watching a lease; after its release nothing of it stays scheduled. */
  forget(lease: Lease): void {
    this.heap.remove(lease);
    this.arm();
  }

  /** Every scheduled lease, for shutdown. */
  drain(): Lease[] {
    const leases: Lease[] = [];
    for (let lease = this.heap.pop(); lease; lease = this.heap.pop()) leases.push(lease);
    this.arm();
    return leases;
  }

  private place(lease: Lease): void {
    let next = lease.expiresAt;
    if (lease.holdDeadline !== undefined) next = Math.min(next, lease.holdDeadline);
    if (lease.autoExtend && !lease.renewing) next = Math.min(next, lease.renewAt);
    lease.nextEventAt = next;
    this.heap.upsert(lease);
  }

  private arm(): void {
    const top = this.heap.peek();
    if (!top) {
      this.disarm();
      return;
    }
    if (this.timer && this.timerAt <= top.nextEventAt) return;
    this.disarm();
    this.timerAt = top.nextEventAt;
    this.timer = setTimeout(() => this.tick(), timerDelay(top.nextEventAt - monotonicNow()));
    // The Redis connection keeps the process alive while locks are held; this timer need not.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private tick(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = monotonicNow();
    const due: Lease[] = [];
    for (let top = this.heap.peek(); top && top.nextEventAt <= now + COALESCE_MS; top = this.heap.peek()) {
      due.push(this.heap.pop() as Lease);
    }
    const toRenew: Lease[] = [];
    for (const lease of due) {
      if (lease.state !== 'held') continue;
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
    if (toRenew.length > 0) this.renew(toRenew, now);
    this.arm();
  }

  private renew(leases: Lease[], sentAt: number): void {
    this.batches += 1;
    this.renewals += leases.length;
    const ttls = leases.map((lease) => lease.ttl);
    const settle = (results: ReadonlyArray<boolean | Error> | Error): void => {
      const now = monotonicNow();
      leases.forEach((lease, i) => {
        if (lease.state !== 'held' || !lease.renewing) return; // released or lost meanwhile
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
          this.hooks.renewed(lease);
        } else {
          // Unknown outcome (connection trouble): try again soon; the expiry event still stands.
          lease.renewAt = now + Math.max(10, Math.min(lease.ttl / 10, 1_000));
        }
        this.place(lease);
      });
      this.arm();
    };
    // Never an unhandled rejection: a failed batch is an unknown outcome for each lease in it.
    this.hooks.renew(leases).then(settle, (error: unknown) =>
      settle(error instanceof Error ? error : new Error(String(error))),
    );
  }
}
