import { driftAllowance, monotonicNow } from '../clock.js';
import type { RedisConnection } from '../interfaces/lock-options.interface.js';
import { DEFAULT_REDLOCK_HUNG_AFTER } from '../lock-options.validation.js';
import { withTimeout } from '../with-timeout.js';
import type { AcquireOutcome, LockStore, ReleaseNotice, Renewal, StoreHealth, WaitIntent } from './lock-store.js';
import { RedisLockStore } from './redis.store.js';

/** How many releases to remember, to pass each on once although every master announces it. */
const SEEN_RELEASES_LIMIT = 10_000;
/** How many tokens' releases to keep ordering attempts behind (oldest forgotten first). */
const RELEASING_LIMIT = 10_000;
/**
 * How many releases may wait at once for one master whose connection is down (in ioredis's
 * queue) or that is hung (in its connection's). The others keep granting locks meanwhile, so
 * without a bound a long outage (with ioredis' `maxRetriesPerRequest: null`, which queues
 * forever, or a hang TCP takes minutes to give up on) would grow the queue with every release.
 * Past it, a release skips that master, where the key then lasts until its ttl, as it would have
 * had the master missed the release any other way.
 */
export const RELEASES_QUEUED_PER_DOWN_MASTER = 10_000;

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
  /**
   * Per token, on each master, its releases there until they have run. A later attempt of the
   * token waits for them on that master: the attempt carries the same token, and a release Redis
   * runs after it (ioredis re-sends a script Redis answered NOSCRIPT to, after whatever was sent
   * meanwhile) would delete the hold the attempt was just granted there.
   */
  private readonly releasing = new Map<string, Array<Promise<void>>>();
  /**
   * Per token, on each master, work there whose effect may still land: an attempt or a write-back
   * Redis has not answered yet, or the second release sent behind one (see releaseOnMasters).
   * Each settles to whether it may have left a hold there. A release of the token there is sent
   * again once it settles, and the token's next attempt there waits for it: a quorum can grant the
   * lock (and the caller release it) before a slower master answers, an attempt Redis answered
   * NOSCRIPT is re-sent after whatever was sent meanwhile, and ioredis re-sends unanswered commands
   * after a reconnect, so any of them may run after a release sent at once.
   */
  private readonly inFlight = new Map<string, Array<Promise<boolean> | undefined>>();
  /** Per master, releases sent while it was down or hung that have not settled yet. */
  private readonly queuedWhileDown: number[];
  /** Per master, calls sent there that have not settled yet. */
  private readonly unanswered: number[];
  /** Per master, when the first call sent there since its last answer was sent (undefined: none since). */
  private readonly silentSince: Array<number | undefined>;
  /** The latest send time of any call any master has answered (see `hung`). */
  private latestAnsweredSend = Number.NEGATIVE_INFINITY;

  private constructor(
    private readonly masters: RedisLockStore[],
    private readonly limits: RedlockLimits,
  ) {
    this.quorum = Math.floor(masters.length / 2) + 1;
    this.queuedWhileDown = masters.map(() => 0);
    this.unanswered = masters.map(() => 0);
    this.silentSince = masters.map(() => undefined);
  }

  /** @internal The masters, read by inspection (lib/inspection). */
  get masterStores(): readonly RedisLockStore[] {
    return this.masters;
  }

  /** `limits`: the module's `redlockHungAfter`, and for tests the release queue's bound (see RedlockLimits). */
  static create(connections: readonly RedisConnection[], prefix: string, limits: Partial<RedlockLimits> = {}): RedlockStore {
    return new RedlockStore(
      connections.map((connection) => RedisLockStore.create(connection, { prefix })),
      { queuedReleases: RELEASES_QUEUED_PER_DOWN_MASTER, hungAfterMs: DEFAULT_REDLOCK_HUNG_AFTER, ...limits },
    );
  }

  async acquire(keys: readonly string[], token: string, ttl: number, intent: WaitIntent): Promise<AcquireOutcome> {
    const start = monotonicNow();
    // No direct handoff under Redlock: one master alone must never grant a lock.
    const masterIntent: WaitIntent = intent.queue ? { ...intent, queue: undefined } : intent;
    // Decided as soon as the answer is known: a quorum granted, or too many masters said busy or
    // failed for a quorum to remain. Slower masters are not waited for.
    const releasing = this.releasing.get(token);
    const inFlight = this.inFlight.get(token);
    let decided = false;
    const attempted = new Set<number>();
    const attempt = (master: RedisLockStore, i: number): Promise<AcquireOutcome> => {
      attempted.add(i);
      const sent = this.tracked(i, master.acquire(keys, token, ttl, masterIntent));
      this.trackInFlight(token, i, sent.then((outcome) => outcome.acquired, () => true));
      return sent;
    };
    const replies = await this.onMasters(
      (master, i) => {
        const before = [releasing?.[i], inFlight?.[i]].filter((pending) => pending !== undefined);
        if (before.length === 0) return attempt(master, i);
        // Sent once this token's releases there have run; never once the call was decided without it.
        return Promise.all(before).then(() => {
          if (decided) throw new Error('attempt not sent: decided without this master');
          return attempt(master, i);
        });
      },
      perMasterBound(ttl),
      (answers) => this.count(answers, isGranted) >= this.quorum || this.count(answers, (a) => a !== undefined && !isGranted(a)) > this.masters.length - this.quorum,
    );
    decided = true;
    const granted = replies.filter(isGranted);
    const validity = ttl - (monotonicNow() - start) - driftAllowance(ttl);
    let fencesRaisedOn: number | undefined;
    if (granted.length >= this.quorum && validity > 0) {
      const fences = keys.map((_, i) => Math.max(...granted.map((reply) => reply.fences[i])));
      // A master that answered exactly these fences already counts at least that high (its
      // counters never go down), so raising it would change nothing. When every granting master
      // did (the usual case: they all saw the same acquisitions), the lock is held now, without
      // the second round trip.
      if (granted.every((reply) => reply.fences.every((fence, i) => fence === fences[i]))) return { acquired: true, fences };
      const grantedBy = new Set(this.masters.filter((_, i) => isGranted(replies[i])));
      const raised = await this.onMasters(
        (master, i) => (grantedBy.has(master) ? this.tracked(i, master.raiseFences(keys, fences)).then(() => true) : Promise.reject(new Error('did not grant'))),
        perMasterBound(ttl),
        (answers) => this.count(answers, (a) => a !== undefined && !(a instanceof Error)) >= this.quorum,
      );
      fencesRaisedOn = this.count(raised, (a) => a !== undefined && !(a instanceof Error));
      if (fencesRaisedOn >= this.quorum) return { acquired: true, fences };
    }
    // Not held: give back what we took on every master this call sent an attempt to, including
    // those whose answer we did not wait for (each connection runs our release after our attempt).
    // Nobody needs to wait for that here; our next attempt on a master waits for it there. A master
    // skipped (down or hung) got no attempt, so nothing to give back there (an earlier attempt of
    // the token was given back by its own call).
    this.releaseOnMasters(keys, token, attempted);
    const failures = replies.filter((reply): reply is Error => reply instanceof Error);
    if (granted.length < this.quorum && failures.length > this.masters.length - this.quorum) {
      throw new AggregateError(failures, `only ${this.masters.length - failures.length} of ${this.masters.length} Redlock masters answered; ${this.quorum} are needed`);
    }
    const busy = replies.find((reply): reply is Extract<AcquireOutcome, { acquired: false }> => reply !== undefined && !(reply instanceof Error) && !reply.acquired);
    if (!busy) throw new Error(this.noQuorumReason(ttl, granted.length, fencesRaisedOn));
    return busy;
  }

  async extend(renewals: readonly Renewal[]): Promise<Array<boolean | Error>> {
    const ttl = Math.min(...renewals.map((renewal) => renewal.ttl));
    const tally = (replies: ReadonlyArray<Array<boolean | Error> | Error | undefined>, i: number) => {
      const answers = replies.map((reply) => (reply === undefined || reply instanceof Error ? reply : reply[i]));
      return {
        renewed: answers.filter((answer) => answer === true).length,
        refused: answers.filter((answer) => answer === false).length,
      };
    };
    // Lost for sure only when too many masters say it is not ours for a quorum to remain.
    const decided = (renewed: number, refused: number) => renewed >= this.quorum || refused > this.masters.length - this.quorum;
    const sent: Array<Promise<Array<boolean | Error>>> = [];
    const replies = await this.onMasters((master, i) => (sent[i] = this.tracked(i, master.extend(renewals), someReply)), perMasterBound(ttl), (answers) =>
      renewals.every((_, i) => {
        const { renewed, refused } = tally(answers, i);
        return decided(renewed, refused);
      }),
    );
    const results = renewals.map((_, i) => {
      const { renewed, refused } = tally(replies, i);
      if (renewed >= this.quorum) return true;
      if (refused > this.masters.length - this.quorum) return false;
      return new Error(`only ${renewed} of ${this.masters.length} Redlock masters confirmed the renewal; ${this.quorum} are needed`);
    });
    this.restoreWhereLost(renewals, results, sent);
    return results;
  }

  /**
   * A master that restarted without its data forgot the locks held when it went down, and one that
   * was out longer than a lease's ttl let it expire while the others renewed it: it refuses their
   * renewals. Where a quorum of the others renewed a lease just now, the lease is written back
   * there (also when that master answers after the quorum decided): otherwise every such restart
   * leaves a long-held lock with one master fewer, and after a rolling restart of the masters it is
   * lost although no one else could ever take it. Safe because the quorum holds the lease: no one
   * else can hold it by quorum meanwhile, and a key someone took on that master stays theirs (NX).
   * Skipped once the lease is no longer held: its release was then sent first, and the write-back
   * would outlive it. A write-back still unanswered when the lease is released (ioredis re-sends
   * it after a reconnect) is followed by a second release there, as an attempt is (see `inFlight`).
   */
  private restoreWhereLost(renewals: readonly Renewal[], results: ReadonlyArray<boolean | Error>, sent: ReadonlyArray<Promise<Array<boolean | Error>> | undefined>): void {
    const restorable = renewals.flatMap((renewal, i) =>
      results[i] === true && renewal.fences && renewal.stillHeld && renewal.permits === undefined && renewal.mode === undefined ? [i] : [],
    );
    if (restorable.length === 0) return;
    sent.forEach((reply, m) => {
      void reply?.then(
        (answers) => {
          for (const i of restorable) {
            const { keys, token, fences, ttl, stillHeld } = renewals[i];
            if (answers[i] !== false || !stillHeld?.()) continue;
            // Work of the token still in flight there (an attempt not yet answered) is waited for too.
            const earlier = this.inFlight.get(token)?.[m];
            const written = this.tracked(m, this.masters[m].restoreHold(keys, token, fences as readonly number[], ttl)).then(() => true, () => true);
            this.trackInFlight(token, m, earlier ? Promise.all([earlier, written]).then(() => true) : written);
          }
        },
        () => undefined,
      );
    });
  }

  /**
   * Releases on every master; done once a quorum answered (never on the first answer), while the
   * rest finish in the background. A master whose connection is down gets it too: the release
   * waits in ioredis's queue and runs once it is back (a master that kept the key through a
   * restart, or a connection cut for a moment, would otherwise hold the lock until its ttl), up to
   * RELEASES_QUEUED_PER_DOWN_MASTER releases waiting there at once.
   */
  async release(keys: readonly string[], token: string): Promise<number> {
    const releases = this.releaseOnMasters(keys, token);
    const replies = await this.onMasters((_, i) => releases[i], 1_000, (answers) =>
      this.count(answers, (answer) => answer !== undefined && !(answer instanceof Error)) >= this.quorum,
    );
    return Math.max(0, ...replies.map((reply) => (reply === undefined || reply instanceof Error ? 0 : reply)));
  }

  async leaveQueue(): Promise<void> {
    // Fair mode is refused at bootstrap with Redlock; nothing ever queues.
  }

  async isLocked(key: string): Promise<boolean> {
    const replies = await this.onMasters((master, i) => this.tracked(i, master.isLocked(key)), 1_000);
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
    // Listening on a majority is enough to hear every release (a release is written to a majority),
    // so this resolves as soon as a majority listens: a master that is down subscribes when it is back.
    await new Promise<void>((resolve, reject) => {
      let listening = 0;
      let failed = 0;
      for (const master of this.masters) {
        master.listenForReleases(once).then(
          () => {
            listening += 1;
            if (listening === this.quorum) resolve();
          },
          () => {
            failed += 1;
            if (failed === this.masters.length - this.quorum + 1) reject(new Error('could not subscribe to a majority of Redlock masters'));
          },
        );
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.masters.map((master) => master.close()));
  }

  /**
   * Releases `token` now on every master, connected or not (a disconnected one runs it once
   * ioredis has reconnected), remembering each release, with the token's earlier ones, until it
   * has run. Returns each master's release.
   */
  private releaseOnMasters(keys: readonly string[], token: string, only?: ReadonlySet<number>): Array<Promise<number>> {
    const inFlight = this.inFlight.get(token);
    const releases = this.masters.map((_, i) => {
      if (only && !only.has(i)) return Promise.resolve(0);
      const pending = inFlight?.[i];
      const now = this.releaseOn(i, keys, token);
      if (!pending) return now;
      const again = pending.then((mayHold) => (mayHold ? this.releaseOn(i, keys, token) : 0));
      this.trackInFlight(token, i, again.then(() => false, () => true));
      return Promise.all([now, again]).then(([first, second]) => Math.max(first, second));
    });
    const earlier = this.releasing.get(token);
    const settled = releases.map((release, i) => {
      const done = release.then(() => undefined, () => undefined);
      return earlier ? Promise.all([earlier[i], done]).then(() => undefined) : done;
    });
    this.releasing.delete(token);
    this.releasing.set(token, settled);
    if (this.releasing.size > RELEASING_LIMIT) this.releasing.delete(this.releasing.keys().next().value as string);
    void Promise.all(settled).then(() => {
      if (this.releasing.get(token) === settled) this.releasing.delete(token);
    });
    return releases;
  }

  /**
   * Sends one release to master `i`. While the master is down or hung, the release waits in its
   * connection's queue and runs once it is back, as one sent just before would; at most
   * `limits.queuedReleases` wait at once, and past that it is skipped (answers 0): the key there
   * then lasts until its ttl.
   */
  private releaseOn(i: number, keys: readonly string[], token: string): Promise<number> {
    const master = this.masters[i];
    if (!master.disconnected && !this.hung(i)) return this.tracked(i, master.release(keys, token));
    if (this.queuedWhileDown[i] >= this.limits.queuedReleases) return Promise.resolve(0);
    this.queuedWhileDown[i] += 1;
    const release = this.tracked(i, master.release(keys, token));
    void release.then(
      () => (this.queuedWhileDown[i] -= 1),
      () => (this.queuedWhileDown[i] -= 1),
    );
    return release;
  }

  /**
   * Counts a call sent to master `i` as unanswered until it settles (see `hung`). A reply (a value
   * or an error Redis sent) is an answer; a rejection from the client itself (a timeout of
   * ioredis' `commandTimeout`, a connection given up) is not: the master said nothing. A call that
   * resolves with errors in its value (a pipeline) tells which by `isAnswer`.
   */
  private tracked<T>(i: number, call: Promise<T>, isAnswer: (value: T) => boolean = () => true): Promise<T> {
    const sentAt = monotonicNow();
    this.silentSince[i] ??= sentAt;
    this.unanswered[i] += 1;
    const settled = (answered: boolean) => {
      this.unanswered[i] -= 1;
      if (!answered) return;
      this.silentSince[i] = this.unanswered[i] > 0 ? monotonicNow() : undefined;
      this.latestAnsweredSend = Math.max(this.latestAnsweredSend, sentAt);
    };
    call.then(
      (value) => settled(isAnswer(value)),
      (error: unknown) => settled(isReply(error)),
    );
    return call;
  }

  /**
   * Master `i` is hung: a call of ours is pending there, and it has answered nothing since a call
   * sent more than `limits.hungAfterMs` before one that another master has answered since. Judged
   * by send times, not by when replies are read: when this process itself stood still (a long
   * synchronous task, a suspended VM), replies wait unread in every socket and are read one socket
   * after another on waking, and no master may be taken for hung then. A connection made again
   * starts its silence afresh. With nothing pending there, a call goes through, and its answer (or
   * silence) decides again: a master whose every call ioredis timed out is not skipped for ever.
   */
  private hung(i: number): boolean {
    const since = this.silentSince[i];
    if (this.unanswered[i] === 0 || since === undefined) return false;
    return this.latestAnsweredSend - Math.max(since, this.masters[i].connectedSince) > this.limits.hungAfterMs;
  }

  /** Remembers work of the token on master `i` until it settles (see `inFlight`); it replaces earlier work there, which it follows. */
  private trackInFlight(token: string, i: number, settled: Promise<boolean>): void {
    let pending = this.inFlight.get(token);
    if (!pending) this.inFlight.set(token, (pending = this.masters.map(() => undefined)));
    pending[i] = settled;
    void settled.then(() => {
      const now = this.inFlight.get(token);
      if (now?.[i] !== settled) return;
      now[i] = undefined;
      if (now.every((work) => work === undefined)) this.inFlight.delete(token);
    });
  }

  /**
   * Runs one call on every master in parallel, each bounded, and resolves once `decided` says the
   * answers so far settle the question (or all have answered): `undefined` marks a master not
   * waited for. A master whose connection dropped costs nothing: it is skipped until ioredis
   * reconnects it. One that hangs with its connection open costs its bound only where its answer
   * is needed to decide (a slow answer is not skipped later: under load it may be a healthy one),
   * until it has answered nothing for `limits.hungAfterMs`: then it is skipped too, until it does.
   */
  private onMasters<T>(
    call: (master: RedisLockStore, index: number) => Promise<T>,
    boundMs: number,
    decided: (answers: ReadonlyArray<T | Error | undefined>) => boolean = () => false,
  ): Promise<Array<T | Error | undefined>> {
    const answers: Array<T | Error | undefined> = this.masters.map(() => undefined);
    return new Promise((resolve) => {
      let pending = this.masters.length;
      let done = false;
      const settle = (i: number, answer: T | Error) => {
        answers[i] = answer;
        pending -= 1;
        if (done) return;
        if (pending === 0 || decided(answers)) {
          done = true;
          resolve([...answers]);
        }
      };
      this.masters.forEach((master, i) => {
        if (master.disconnected) {
          settle(i, new Error('Redlock master is disconnected; skipped until ioredis reconnects it'));
          return;
        }
        if (this.hung(i)) {
          settle(i, new Error(`Redlock master has answered nothing for over ${this.limits.hungAfterMs} ms; skipped until it answers again`));
          return;
        }
        withTimeout(call(master, i), boundMs).then(
          (answer) => settle(i, answer),
          (error: unknown) => settle(i, error instanceof Error ? error : new Error(String(error))),
        );
      });
    });
  }

  /**
   * Why an acquire that a quorum granted (nobody answered busy, too few failed to rule it out) still
   * does not hold the lock: its validity ran out first, or its fence could not be raised on a quorum.
   */
  private noQuorumReason(ttl: number, granted: number, fencesRaisedOn: number | undefined): string {
    if (fencesRaisedOn === undefined) return `Redlock quorum reached too late: the lease's validity (${ttl} ms) ran out while acquiring`;
    return `Redlock fence not raised on a quorum: ${granted} masters granted the lock but only ${fencesRaisedOn} confirmed its fence (${this.quorum} are needed), so it was given back`;
  }

  private count<T>(answers: ReadonlyArray<T>, test: (answer: T) => boolean): number {
    return answers.filter(test).length;
  }
}

/** Bounds on what a master that is down or hung may cost. */
interface RedlockLimits {
  /** See RELEASES_QUEUED_PER_DOWN_MASTER. */
  queuedReleases: number;
  /**
   * The module's `redlockHungAfter`. A master with calls of ours unanswered and no answer at all
   * for this long, while the others answered, is hung (a stopped process, a network path that
   * drops packets without closing the connection): calls skip it until it answers again (see
   * `hung`), and releases wait for it within `queuedReleases`. Its connection stays open, so until
   * TCP gives up (minutes) every call sent there would wait in the connection's queue. The
   * default, DEFAULT_REDLOCK_HUNG_AFTER, is longer than any call's bound (at most 5 s, see
   * perMasterBound), so a master that is merely slow is never skipped while its answer could
   * still count.
   */
  hungAfterMs: number;
}

/**
 * Per-master bound on a lease call. Classic Redlock keeps it small (a tenth of the lease) so a dead
 * master does not block the call; here every quorum call is decided as soon as the answers allow
 * and a disconnected master is skipped, so a master's answer is only waited for while it is still
 * needed to decide, and then it is worth waiting for as long as the lease could still be valid: a
 * shorter bound turns a merely slow master (a loaded machine) into "unavailable". At least 100 ms,
 * at most 5 s (each pending call holds a timer).
 */
function perMasterBound(ttl: number): number {
  return Math.min(5_000, Math.max(100, ttl - driftAllowance(ttl)));
}

/** An error Redis itself sent (ioredis' ReplyError), as opposed to one the client raised. */
function isReply(error: unknown): boolean {
  return (error as { name?: unknown } | undefined)?.name === 'ReplyError';
}

/** Renewals come back as a pipeline's answers, one per renewal: Redis answered if any is not the client's own error. */
function someReply(answers: ReadonlyArray<boolean | Error>): boolean {
  return answers.some((answer) => !(answer instanceof Error) || isReply(answer));
}

function isGranted(reply: AcquireOutcome | Error | undefined): reply is Extract<AcquireOutcome, { acquired: true }> {
  return reply !== undefined && !(reply instanceof Error) && reply.acquired;
}
