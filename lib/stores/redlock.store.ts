import { driftAllowance, monotonicNow } from '../clock.js';
import type { RedisConnection } from '../interfaces/lock-options.interface.js';
import { withTimeout } from '../with-timeout.js';
import type { AcquireOutcome, LockStore, ReleaseNotice, Renewal, StoreHealth, WaitIntent } from './lock-store.js';
import { RedisLockStore } from './redis.store.js';

/** How many releases to remember, to pass each on once although every master announces it. */
const SEEN_RELEASES_LIMIT = 10_000;

/**
 * Redlock: one lock over N independent masters (N >= 3), held when a majority took it within the
 * lease's validity time. Each master is a {@link RedisLockStore}, so the scripts, owner checks and
 * fence counters are the same as on one Redis.
 *
 * Fence under Redlock: the largest counter among the masters that granted the lock, written back
 * to each of them before the lock is handed out. Any later quorum overlaps this one in at least
 * one master, whose counter is then already at least this fence, so fences still strictly increase
 * per key (as long as masters keep their data; see the README on restarts).
 */
export class RedlockStore implements LockStore {
  readonly quorum: number;
  private readonly seenReleases = new Set<string>();

  private constructor(private readonly masters: RedisLockStore[]) {
    this.quorum = Math.floor(masters.length / 2) + 1;
  }

  static create(connections: readonly RedisConnection[], prefix: string): RedlockStore {
    return new RedlockStore(connections.map((connection) => RedisLockStore.create(connection, { prefix })));
  }

  async acquire(keys: readonly string[], token: string, ttl: number, intent: WaitIntent): Promise<AcquireOutcome> {
    const start = monotonicNow();
    const replies = await this.onEveryMaster((master) => master.acquire(keys, token, ttl, intent), perMasterBound(ttl));
    const granted = replies.filter(isGranted);
    const validity = ttl - (monotonicNow() - start) - driftAllowance(ttl);
    if (granted.length >= this.quorum && validity > 0) {
      const fences = keys.map((_, i) => Math.max(...granted.map((reply) => reply.fences[i])));
      const grantedBy = this.masters.filter((_, i) => isGranted(replies[i]));
      const raised = await Promise.all(
        grantedBy.map((master) => this.bounded(master.raiseFences(keys, fences), perMasterBound(ttl))),
      );
      if (raised.filter((result) => !(result instanceof Error)).length >= this.quorum) return { acquired: true, fences };
    }
    // Not held: give back what we took everywhere, including masters whose answer we did not get.
    await this.release(keys, token);
    const failures = replies.filter((reply): reply is Error => reply instanceof Error);
    if (granted.length < this.quorum && failures.length > this.masters.length - this.quorum) {
      throw new AggregateError(failures, `only ${this.masters.length - failures.length} of ${this.masters.length} Redlock masters answered; ${this.quorum} are needed`);
    }
    const busy = replies.find((reply): reply is { acquired: false; busyKey: string; busyForMs: number } => !(reply instanceof Error) && !reply.acquired);
    if (!busy) throw new Error(`Redlock quorum reached too late: the lease's validity (${ttl} ms) ran out while acquiring`);
    return busy;
  }

  async extend(renewals: readonly Renewal[]): Promise<Array<boolean | Error>> {
    const ttl = Math.min(...renewals.map((renewal) => renewal.ttl));
    const replies = await this.onEveryMaster((master) => master.extend(renewals), perMasterBound(ttl));
    return renewals.map((_, i) => {
      const answers = replies.map((reply) => (reply instanceof Error ? reply : reply[i]));
      const renewed = answers.filter((answer) => answer === true).length;
      const refused = answers.filter((answer) => answer === false).length;
      if (renewed >= this.quorum) return true;
      // Lost for sure only when too many masters say it is not ours for a quorum to remain.
      if (refused > this.masters.length - this.quorum) return false;
      return new Error(`only ${renewed} of ${this.masters.length} Redlock masters confirmed the renewal; ${this.quorum} are needed`);
    });
  }

  /** Releases on every master (never counted done on the first one); resolves when all answered or timed out. */
  async release(keys: readonly string[], token: string): Promise<number> {
    const replies = await this.onEveryMaster((master) => master.release(keys, token), 1_000);
    return Math.max(0, ...replies.map((reply) => (reply instanceof Error ? 0 : reply)));
  }

  async leaveQueue(): Promise<void> {
    // Fair mode is refused at bootstrap with Redlock; nothing ever queues.
  }

  async isLocked(key: string): Promise<boolean> {
    const replies = await this.onEveryMaster((master) => master.isLocked(key), 1_000);
    const locked = replies.filter((reply) => reply === true).length;
    const failures = replies.filter((reply) => reply instanceof Error) as Error[];
    if (locked >= this.quorum) return true;
    if (this.masters.length - failures.length < this.quorum) {
      throw new AggregateError(failures, `only ${this.masters.length - failures.length} Redlock masters answered`);
    }
    return false;
  }

  async ping(timeoutMs: number): Promise<StoreHealth> {
    const nodes = (await Promise.all(this.masters.map((master) => master.ping(timeoutMs)))).flatMap((health) => health.nodes);
    return { up: nodes.filter((node) => node.up).length >= this.quorum, nodes, quorum: this.quorum };
  }

  async listenForReleases(onRelease: (notice: ReleaseNotice) => void): Promise<void> {
    const once = (notice: ReleaseNotice) => {
      const id = `${notice.releasedBy}${notice.key}`;
      if (this.seenReleases.has(id)) return;
      this.seenReleases.add(id);
      if (this.seenReleases.size > SEEN_RELEASES_LIMIT) {
        this.seenReleases.delete(this.seenReleases.values().next().value as string);
      }
      onRelease(notice);
    };
    // Listening on a majority is enough to hear every release; the rest may come later.
    const results = await Promise.allSettled(this.masters.map((master) => master.listenForReleases(once)));
    if (results.filter((result) => result.status === 'fulfilled').length < this.quorum) {
      throw new Error('could not subscribe to a majority of Redlock masters');
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.masters.map((master) => master.close()));
  }

  /** Runs one call on every master in parallel, each bounded so an unreachable master is skipped quickly. */
  private onEveryMaster<T>(call: (master: RedisLockStore) => Promise<T>, boundMs: number): Promise<Array<T | Error>> {
    return Promise.all(this.masters.map((master) => this.bounded(call(master), boundMs)));
  }

  private bounded<T>(promise: Promise<T>, boundMs: number): Promise<T | Error> {
    return withTimeout(promise, boundMs).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  }
}

/** Per-master bound on a lease call: small against the lease (a tenth), between 100 ms and 1 s. */
function perMasterBound(ttl: number): number {
  return Math.min(1_000, Math.max(100, ttl / 10));
}

function isGranted(reply: AcquireOutcome | Error): reply is Extract<AcquireOutcome, { acquired: true }> {
  return !(reply instanceof Error) && reply.acquired;
}
