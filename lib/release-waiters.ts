import { monotonicNow, timerDelay } from './clock.js';
import type { ReleaseNotice } from './stores/lock-store.js';

/** How long a release is remembered, to catch one that raced a waiter's own attempt. */
const RECENT_RELEASE_MS = 5_000;
const RECENT_RELEASE_LIMIT = 100_000;

export type WakeReason = 'released' | 'granted' | 'timeout' | 'aborted';

/** A fair release's grant to one waiter (see ReleaseNotice.grantedTo). */
export interface Grant {
  fence: number;
  attempt?: number;
}

/**
 * One caller waiting for a busy key. It keeps its place in its key's queue across retries, so a
 * release wakes the longest-waiting local caller rather than all of them (no thundering herd).
 */
export class Waiter {
  private wakeUp: ((reason: WakeReason) => void) | undefined;
  /** Woken by a release it has not yet acted on; handed on if it gives up instead. */
  private pendingWake = false;

  /**
   * The lock a fair release handed to this waiter, once it has: its fence and, when known, the
   * waiter's attempt that queued it (the grant came after that attempt ran). Without the attempt
   * it is only a reason to ask again at once (see LockService.acquireLease).
   */
  granted: Grant | undefined;

  constructor(
    private readonly hub: ReleaseWaiters,
    public key: string,
    readonly token: string,
  ) {}

  get sleeping(): boolean {
    return this.wakeUp !== undefined;
  }

  /** Sleeps until a release of its key, the time `ms` passes, or the signal aborts. */
  sleep(ms: number, signal: AbortSignal | undefined): Promise<WakeReason> {
    if (signal?.aborted) return Promise.resolve('aborted');
    // Granted while it was busy elsewhere (asking Redis, subscribing): nothing to wait for.
    if (this.granted !== undefined) return Promise.resolve('granted');
    return new Promise<WakeReason>((resolve) => {
      const onAbort = () => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), timerDelay(ms));
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

  /** A fair release handed this waiter the lock: it wakes to take it (or to confirm it with Redis). */
  grant(grant: Grant): void {
    this.granted = grant;
    this.wakeUp?.('granted');
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
  private readonly byToken = new Map<string, Waiter>();
  /** Tokens of this service's queued waits still running: only grants to them are kept. */
  private readonly expected = new Set<string>();
  /** Grants heard before their waiter was registered (the attempt's reply and the grant raced). */
  private readonly earlyGrants = new Map<string, Grant>();

  /**
   * Called for every release announced by the store. A grant may be heard twice: from the reply
   * of a release made by this process and from the release channel. A second copy reaching a
   * waiter still running is harmless (the same grant, or after a give-back one it confirms with
   * Redis); a copy for a wait that has ended, or for another instance's token, is dropped.
   */
  readonly onRelease = ({ key, grantedTo }: ReleaseNotice): void => {
    if (grantedTo) {
      // Handed to one waiter: nobody else needs waking, the key is taken again.
      const grant: Grant = { fence: grantedTo.fence, attempt: grantedTo.attempt };
      const waiter = this.byToken.get(grantedTo.token);
      if (waiter) waiter.grant(grant);
      else if (this.expected.has(grantedTo.token)) this.earlyGrants.set(grantedTo.token, grant);
      return;
    }
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

  /** A queued wait with this token begins: a grant to it may arrive before its waiter is enqueued. */
  expect(token: string): void {
    this.expected.add(token);
  }

  /** That wait has ended (its waiter disposed): grants to the token are stale from now on. */
  forget(token: string): void {
    this.expected.delete(token);
    this.earlyGrants.delete(token);
  }

  enqueue(key: string, token: string): Waiter {
    const waiter = new Waiter(this, key, token);
    this.add(waiter);
    const early = this.earlyGrants.get(token);
    if (early !== undefined) {
      this.earlyGrants.delete(token);
      waiter.grant(early);
    }
    return waiter;
  }

  /** Number of waiters in queues (for tests: a cancelled wait leaves none behind). */
  get size(): number {
    let count = 0;
    for (const queue of this.queues.values()) count += queue.length;
    return count;
  }

  add(waiter: Waiter): void {
    this.byToken.set(waiter.token, waiter);
    const queue = this.queues.get(waiter.key);
    if (queue) queue.push(waiter);
    else this.queues.set(waiter.key, [waiter]);
  }

  remove(waiter: Waiter): void {
    this.byToken.delete(waiter.token);
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
