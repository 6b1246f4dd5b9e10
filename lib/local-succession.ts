import type { Waiter } from './release-waiters.js';

/** A lock a release of this process gave straight to one of its own waiters. */
export interface Succession {
  fence: number;
  /** When that release was sent (monotonic ms): the key became the successor's after it. */
  sentAt: number;
}

/**
 * A caller waiting for a key that this service itself holds (one key, default mode), without
 * asking Redis: the holder's release offers it the key (see LockService.releaseToSuccessor).
 */
export class SuccessionCandidate {
  /** Set once a release gave it the key. */
  succeeded: Succession | undefined;
  /** Set once it must ask Redis like any waiter (the key went elsewhere, or its holder lost it). */
  dismissed = false;
  /**
   * The release that offered it the key, settled once Redis answered (or never will): a caller
   * that gives up must give back a key that release may have given it.
   */
  offer: Promise<void> | undefined;
  /** When the last release that offered it the key was sent (monotonic ms): only that one can have given it the key. */
  offeredAt: number | undefined;
  /**
   * Set once it stopped waiting here (it went to ask Redis, or its wait ended): a release must not
   * offer it the key again.
   */
  left = false;

  constructor(
    readonly key: string,
    readonly token: string,
    readonly ttl: number,
    /** Sleeps until offered or dismissed; not in the release hub, so release messages do not wake it. */
    readonly waiter: Waiter,
  ) {}

  succeed(succession: Succession): void {
    this.succeeded = succession;
    this.waiter.wake();
  }

  dismiss(): void {
    this.dismissed = true;
    this.waiter.wake();
  }
}

/**
 * The callers of one service that wait for keys the service holds, per key, in arrival order.
 * Handing a held key to the next caller of the same process in the release itself saves every
 * such caller its own round trip to Redis, and Redis the queueing it would do (issue 15: one
 * contended key among the callers of one process).
 */
export class LocalSuccession {
  private readonly lines = new Map<string, SuccessionCandidate[]>();

  join(candidate: SuccessionCandidate): void {
    const line = this.lines.get(candidate.key);
    if (line) line.push(candidate);
    else this.lines.set(candidate.key, [candidate]);
  }

  /** The candidate stops waiting here (it asks Redis now, or its wait ended): out of its line for good. */
  leave(candidate: SuccessionCandidate): void {
    candidate.left = true;
    const line = this.lines.get(candidate.key);
    if (!line) return;
    const index = line.indexOf(candidate);
    if (index >= 0) line.splice(index, 1);
    if (line.length === 0) this.lines.delete(candidate.key);
  }

  /** The first candidate for `key`, taken out of the line: a release is about to offer it the key. */
  next(key: string): SuccessionCandidate | undefined {
    const line = this.lines.get(key);
    const candidate = line?.shift();
    if (line?.length === 0) this.lines.delete(key);
    return candidate;
  }

  /** Puts an offered candidate back at the front (the key went to another waiter of this process). */
  putBack(candidate: SuccessionCandidate): void {
    const line = this.lines.get(candidate.key);
    if (line) line.unshift(candidate);
    else this.lines.set(candidate.key, [candidate]);
  }

  /** Every candidate for `key` goes and asks Redis (the key left this process, or may have). */
  dismiss(key: string): void {
    const line = this.lines.get(key);
    if (!line) return;
    this.lines.delete(key);
    for (const candidate of line) candidate.dismiss();
  }

  dismissAll(): void {
    for (const key of [...this.lines.keys()]) this.dismiss(key);
  }

  get size(): number {
    let count = 0;
    for (const line of this.lines.values()) count += line.length;
    return count;
  }
}
