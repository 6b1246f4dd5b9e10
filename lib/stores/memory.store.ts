import { monotonicNow } from '../clock.js';
import type { AcquireOutcome, LeaseShape, LockStore, ReleaseNotice, Renewal, StoreHealth, WaitIntent } from './lock-store.js';

interface HeldKey {
  token: string;
  expiresAt: number;
  /** Kept with the hold: a repeated answer for this holder is its own fence, never "the counter now". */
  fence: number;
}

interface QueuedWaiter {
  token: string;
  ttl: number;
  goneAt: number;
}

/** Drops the holders (token → lease expiry) whose lease ran out, as the Redis scripts do. */
function dropExpired(holders: Map<string, number>, now: number): void {
  for (const [token, expiresAt] of holders) if (expiresAt <= now) holders.delete(token);
}

/** Everything one prefix holds in this process: what Redis would hold for it. */
export class MemoryKeyspace {
  readonly locks = new Map<string, HeldKey>();
  /**
   * One fence counter for the whole keyspace, as Redis keeps one per prefix: it only grows, so each
   * key still sees strictly increasing fences, and locking many distinct keys leaves nothing behind.
   */
  private fenceCounter = 0;
  readonly queues = new Map<string, QueuedWaiter[]>();
  readonly listeners = new Set<(notice: ReleaseNotice) => void>();
  /** Readers of read-write locks: each reader's lease expiry. */
  readonly readers = new Map<string, Map<string, number>>();
  /** Until when a writer waiting for readers keeps new readers out. */
  readonly writerWaiting = new Map<string, number>();

  liveReaders(key: string, now: number): Map<string, number> | undefined {
    const readers = this.readers.get(key);
    if (!readers) return undefined;
    dropExpired(readers, now);
    if (readers.size === 0) {
      this.readers.delete(key);
      return undefined;
    }
    return readers;
  }

  /** Semaphores: the agreed limit and each holder's lease expiry. */
  readonly semaphores = new Map<string, { limit: number; holders: Map<string, number> }>();

  /** A semaphore's live holders (expired permits are dropped, as the Redis script does). */
  semaphore(key: string, now: number): { limit: number; holders: Map<string, number> } | undefined {
    const semaphore = this.semaphores.get(key);
    if (!semaphore) return undefined;
    dropExpired(semaphore.holders, now);
    if (semaphore.holders.size === 0) {
      this.semaphores.delete(key);
      return undefined;
    }
    return semaphore;
  }

  /** The key's holder, if its lease has not run out (expired leases vanish, as in Redis). */
  holder(key: string, now: number): HeldKey | undefined {
    const held = this.locks.get(key);
    if (held && held.expiresAt <= now) {
      this.locks.delete(key);
      return undefined;
    }
    return held;
  }

  /**
   * Earliest lease end among the key's shared holders (readers or permits), if any is live: they
   * keep a writer out, as in the Redis scripts.
   */
  sharedUntil(key: string, now: number): number | undefined {
    const readers = this.liveReaders(key, now);
    if (readers) return Math.min(...readers.values());
    const semaphore = this.semaphore(key, now);
    return semaphore ? Math.min(...semaphore.holders.values()) : undefined;
  }

  nextFence(): number {
    this.fenceCounter += 1;
    return this.fenceCounter;
  }

  /** Drops queued waiters that stopped refreshing their place, and returns the queue. */
  queue(key: string, now: number): QueuedWaiter[] {
    const queue = (this.queues.get(key) ?? []).filter((waiter) => waiter.goneAt > now);
    if (queue.length > 0) this.queues.set(key, queue);
    else this.queues.delete(key);
    return queue;
  }

  /** After a release: hand the key to the first queued waiter, or announce it free. */
  handOver(key: string, releasedBy: string, now: number): void {
    const next = this.queue(key, now).shift();
    if (next) {
      const fence = this.nextFence();
      this.locks.set(key, { token: next.token, expiresAt: now + next.ttl, fence });
      this.announce({ key, releasedBy: next.token, grantedTo: { token: next.token, fence } });
    } else {
      this.announce({ key, releasedBy });
    }
  }

  announce(notice: ReleaseNotice): void {
    // Delivered later, like a pub/sub message: never inside the caller's own call.
    for (const listener of this.listeners) setImmediate(listener, notice);
  }
}

/** One keyspace per prefix, shared by every LockModule in this process (as Redis would be). */
const keyspaces = new Map<string, MemoryKeyspace>();

/**
 * `store: 'memory'`: the same semantics as Redis (leases with TTL, fencing counters, all-or-nothing
 * multi-key, release notifications, fair queue with handoff) inside this process, for users' unit
 * tests and single-process development. Several apps in one process share it, so they contend
 * like instances behind one Redis; separate processes do not.
 */
export class MemoryLockStore implements LockStore {
  private readonly space: MemoryKeyspace;
  private listener: ((notice: ReleaseNotice) => void) | undefined;

  constructor(prefix: string) {
    let space = keyspaces.get(prefix);
    if (!space) keyspaces.set(prefix, (space = new MemoryKeyspace()));
    this.space = space;
  }

  /** @internal The keyspace, read by inspection (lib/inspection/memory-inspection.ts). */
  get keyspace(): MemoryKeyspace {
    return this.space;
  }

  async acquire(keys: readonly string[], token: string, ttl: number, intent: WaitIntent): Promise<AcquireOutcome> {
    await Promise.resolve(); // a store call is never synchronous, as over a socket
    const now = monotonicNow();
    const space = this.space;
    if (intent.fair) {
      const key = keys[0];
      const holder = space.holder(key, now);
      if (holder?.token === token) return { acquired: true, fences: [holder.fence], grantedEarlier: true };
      const queue = space.queue(key, now);
      const shared = holder ? undefined : space.sharedUntil(key, now);
      // A fair writer kept out by shared holders keeps new ones out in turn, like any writer.
      if (shared !== undefined && intent.announceFor > 0) space.writerWaiting.set(key, now + intent.announceFor);
      if (!holder && shared === undefined && (queue.length === 0 || queue[0].token === token)) {
        if (queue.length > 0) queue.shift();
        const fence = space.nextFence();
        space.locks.set(key, { token, expiresAt: now + ttl, fence });
        space.writerWaiting.delete(key);
        return { acquired: true, fences: [fence] };
      }
      const place = queue.find((waiter) => waiter.token === token);
      if (place) place.goneAt = now + intent.fair.presenceTtl;
      else space.queues.set(key, [...queue, { token, ttl, goneAt: now + intent.fair.presenceTtl }]);
      return { acquired: false, busyKey: key, busyForMs: holder ? Math.ceil(holder.expiresAt - now) : -1 };
    }
    if (intent.permits !== undefined) return this.acquirePermits(keys, token, ttl, intent.permits, now);
    if (intent.mode === 'read') return this.acquireRead(keys, token, ttl, now);
    for (const key of keys) {
      const holder = space.holder(key, now);
      if (holder) return { acquired: false, busyKey: key, busyForMs: Math.ceil(holder.expiresAt - now) };
      const shared = space.sharedUntil(key, now);
      if (shared !== undefined) {
        // A writer kept out by shared holders keeps new ones out in turn, while it waits.
        if (intent.announceFor > 0) space.writerWaiting.set(key, now + intent.announceFor);
        return { acquired: false, busyKey: key, busyForMs: Math.ceil(shared - now) };
      }
    }
    return {
      acquired: true,
      fences: keys.map((key) => {
        const fence = space.nextFence();
        space.locks.set(key, { token, expiresAt: now + ttl, fence });
        space.writerWaiting.delete(key);
        return fence;
      }),
    };
  }

  private acquireRead(keys: readonly string[], token: string, ttl: number, now: number): AcquireOutcome {
    const space = this.space;
    for (const key of keys) {
      // Readers share with readers only: permit holders keep them out too.
      const busyUntil = this.exclusiveOrWaitingUntil(key, now) ?? (space.semaphore(key, now) ? space.sharedUntil(key, now) : undefined);
      if (busyUntil !== undefined) return { acquired: false, busyKey: key, busyForMs: Math.ceil(busyUntil - now) };
    }
    for (const key of keys) {
      const readers = space.liveReaders(key, now) ?? new Map<string, number>();
      readers.set(token, now + ttl);
      space.readers.set(key, readers);
    }
    return { acquired: true, fences: keys.map(() => space.nextFence()) };
  }

  private acquirePermits(keys: readonly string[], token: string, ttl: number, permits: number, now: number): AcquireOutcome {
    const space = this.space;
    for (const key of keys) {
      const semaphore = space.semaphore(key, now);
      if (semaphore && semaphore.limit !== permits) return { acquired: false, busyKey: key, busyForMs: -1, permitsInUse: semaphore.limit };
      let busyUntil = this.exclusiveOrWaitingUntil(key, now);
      if (busyUntil === undefined && space.liveReaders(key, now)) busyUntil = space.sharedUntil(key, now);
      if (busyUntil === undefined && semaphore && semaphore.holders.size >= permits) busyUntil = Math.min(...semaphore.holders.values());
      if (busyUntil !== undefined) return { acquired: false, busyKey: key, busyForMs: Math.ceil(busyUntil - now) };
    }
    for (const key of keys) {
      const semaphore = space.semaphore(key, now) ?? { limit: permits, holders: new Map<string, number>() };
      semaphore.holders.set(token, now + ttl);
      space.semaphores.set(key, semaphore);
    }
    return { acquired: true, fences: keys.map(() => space.nextFence()) };
  }

  /** Until when an exclusive holder or a waiting writer keeps shared holders out, if one does. */
  private exclusiveOrWaitingUntil(key: string, now: number): number | undefined {
    const holder = this.space.holder(key, now);
    const writerWaitsUntil = this.space.writerWaiting.get(key) ?? 0;
    if (!holder && writerWaitsUntil <= now) return undefined;
    return Math.max(holder?.expiresAt ?? 0, writerWaitsUntil);
  }

  async extend(renewals: readonly Renewal[]): Promise<Array<boolean | Error>> {
    await Promise.resolve();
    const now = monotonicNow();
    return renewals.map(({ keys, token, ttl, permits, mode }) => {
      if (mode === 'read') {
        const readers = keys.map((key) => this.space.liveReaders(key, now));
        if (!readers.every((set) => set?.has(token))) return false;
        for (const set of readers) set?.set(token, now + ttl);
        return true;
      }
      if (permits !== undefined) {
        const semaphores = keys.map((key) => this.space.semaphore(key, now));
        if (!semaphores.every((semaphore) => semaphore?.holders.has(token))) return false;
        for (const semaphore of semaphores) semaphore?.holders.set(token, now + ttl);
        return true;
      }
      if (!keys.every((key) => this.space.holder(key, now)?.token === token)) return false;
      for (const key of keys) (this.space.holder(key, now) as HeldKey).expiresAt = now + ttl;
      return true;
    });
  }

  async release(keys: readonly string[], token: string, shape?: LeaseShape): Promise<number> {
    const fair = shape?.fair;
    await Promise.resolve();
    const now = monotonicNow();
    let released = 0;
    for (const key of keys) {
      if (shape?.mode === 'read') {
        if (this.space.liveReaders(key, now)?.delete(token)) {
          released += 1;
          this.space.announce({ key, releasedBy: token });
        }
        continue;
      }
      if (shape?.permits !== undefined) {
        if (this.space.semaphore(key, now)?.holders.delete(token)) {
          released += 1;
          this.space.announce({ key, releasedBy: token });
        }
        continue;
      }
      if (this.space.holder(key, now)?.token !== token) continue;
      this.space.locks.delete(key);
      released += 1;
      if (fair) this.space.handOver(key, token, now);
      else this.space.announce({ key, releasedBy: token });
    }
    return released;
  }

  async leaveQueue(key: string, token: string): Promise<void> {
    await Promise.resolve();
    const now = monotonicNow();
    const queue = this.space.queue(key, now).filter((waiter) => waiter.token !== token);
    if (queue.length > 0) this.space.queues.set(key, queue);
    else this.space.queues.delete(key);
    // Handed the lock just as it gave up: pass it on.
    if (this.space.holder(key, now)?.token === token) {
      this.space.locks.delete(key);
      this.space.handOver(key, token, now);
    }
  }

  async isLocked(key: string): Promise<boolean> {
    await Promise.resolve();
    return this.space.holder(key, monotonicNow()) !== undefined;
  }

  async ping(): Promise<StoreHealth> {
    return { up: true, nodes: [{ node: 'memory', up: true, rttMs: 0 }] };
  }

  async listenForReleases(onRelease: (notice: ReleaseNotice) => void): Promise<void> {
    if (this.listener) return;
    this.listener = onRelease;
    this.space.listeners.add(onRelease);
  }

  async close(): Promise<void> {
    if (this.listener) this.space.listeners.delete(this.listener);
    this.listener = undefined;
  }
}
