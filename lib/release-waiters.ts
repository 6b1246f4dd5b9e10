import { monotonicNow } from './clock.js';

/** How long a release is remembered, to catch one that raced a waiter's own attempt. */
const RECENT_RELEASE_MS = 5_000;
const RECENT_RELEASE_LIMIT = 100_000;

export type WakeReason = 'released' | 'timeout' | 'aborted';

/**
 * One caller waiting for a busy key. It keeps its place in its key's queue across retries, so a
 * release wakes the longest-waiting local caller rather than all of them (no thundering herd).
 */
export class Waiter {
  private wakeUp: ((reason: WakeReason) => void) | undefined;
  /** Woken by a release it has not yet acted on; handed on if it gives up instead. */
  private pendingWake = false;

  constructor(
    private readonly hub: ReleaseWaiters,
    public key: string,
  ) {}

  get sleeping(): boolean {
    return this.wakeUp !== undefined;
  }

  /** Sleeps until a release of its key, the time `ms` passes, or the signal aborts. */
  sleep(ms: number, signal: AbortSignal | undefined): Promise<WakeReason> {
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<WakeReason>((resolve) => {
      const onAbort = () => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), Math.max(0, ms));
      const finish = (reason: WakeReason) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.wakeUp = undefined;
        resolve(reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wakeUp = finish;
    });
  }

  /** Called by the hub for a release of this waiter's key. */
  wake(): void {
    this.pendingWake = true;
    this.wakeUp?.('released');
  }

  /** The waiter is about to try again; the wake it got (if any) is being used. */
  consumeWake(): void {
    this.pendingWake = false;
  }

  /** Waits for a different key from now on (a multi-key attempt found another one busy). */
  moveTo(key: string): void {
    if (key === this.key) return;
    this.hub.remove(this);
    this.key = key;
    this.hub.add(this);
  }

  dispose(): void {
    this.hub.remove(this);
    // A release meant for us that we will not use goes to the next local waiter.
    if (this.pendingWake) this.hub.wakeOne(this.key);
  }
}

/**
 * Fans release notifications out to this service's waiters: one subscription for the service, a
 * FIFO of waiters per key, and a short memory of recent releases per key.
 */
export class ReleaseWaiters {
  private readonly queues = new Map<string, Waiter[]>();
  private readonly recent = new Map<string, number>();

  /** Called for every release announced by the store. */
  readonly onRelease = (key: string): void => {
    const now = monotonicNow();
    this.recent.delete(key); // re-insert so the map stays ordered by time
    this.recent.set(key, now);
    for (const [oldKey, at] of this.recent) {
      if (now - at < RECENT_RELEASE_MS && this.recent.size <= RECENT_RELEASE_LIMIT) break;
      this.recent.delete(oldKey);
    }
    this.wakeOne(key);
  };

  /** A release of `key` was seen after `since` (monotonic ms): the caller's busy answer may be stale. */
  releasedSince(key: string, since: number): boolean {
    const at = this.recent.get(key);
    return at !== undefined && at >= since;
  }

  enqueue(key: string): Waiter {
    const waiter = new Waiter(this, key);
    this.add(waiter);
    return waiter;
  }

  /** Number of waiters in queues (for tests: a cancelled wait leaves none behind). */
  get size(): number {
    let count = 0;
    for (const queue of this.queues.values()) count += queue.length;
    return count;
  }

  add(waiter: Waiter): void {
    const queue = this.queues.get(waiter.key);
    if (queue) queue.push(waiter);
    else this.queues.set(waiter.key, [waiter]);
  }

  remove(waiter: Waiter): void {
    const queue = this.queues.get(waiter.key);
    if (!queue) return;
    const index = queue.indexOf(waiter);
    if (index >= 0) queue.splice(index, 1);
    if (queue.length === 0) this.queues.delete(waiter.key);
  }

  wakeOne(key: string): void {
    const queue = this.queues.get(key);
    // Waiters that are mid-attempt will see the release through releasedSince().
    queue?.find((waiter) => waiter.sleeping)?.wake();
  }

  /** Wakes every waiter (shutdown): each re-checks and ends its wait. */
  wakeAll(): void {
    for (const queue of this.queues.values()) for (const waiter of [...queue]) waiter.wake();
  }
}
