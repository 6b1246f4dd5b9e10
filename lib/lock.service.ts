import { Inject, Injectable, Logger, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import { driftAllowance, monotonicNow } from './clock.js';
import { runWithCurrentLock } from './current-lock.js';
import { LeaseRanOutError, LockConfigError, ReplicaShortfallError, LockLostError, LockNotAcquiredError, LockUnavailableError } from './errors.js';
import type { LockEvent, LockEventListener } from './interfaces/lock-event.interface.js';
import type { AcquireOptions } from './interfaces/lock-options.interface.js';
import type { LeadOptions, LeaderCampaign, Leadership } from './interfaces/leadership.interface.js';
import { LeaderElections } from './leader/leader-election.js';
import { Lease } from './lease.js';
import { LeaseKeeper, type LeaseLossReason } from './lease-keeper.js';
import { LOCK_OPTIONS, LOCK_STORE, LOCK_TELEMETRY } from './lock.constants.js';
import type { LockTelemetry } from './telemetry/lock-telemetry.js';
import { assertValidKey, normalizeKeys } from './lock-keys.js';
import { MESSAGES } from './lock.messages.js';
import {
  positiveMs,
  resolveCallOptions,
  type ResolvedCallOptions,
  type ResolvedModuleOptions,
} from './lock-options.validation.js';
import { Lock, type LeaseOwner } from './lock.js';
import { LocalSuccession, SuccessionCandidate, type Succession } from './local-succession.js';
import { ReleaseWaiters, Waiter } from './release-waiters.js';
import type { AcquireOutcome, LeaseShape, LockStore, Renewal, StoreHealth, SuccessionOutcome, WaitIntent } from './stores/lock-store.js';
import { withTimeout } from './with-timeout.js';
// Operations (issue 16): instance identity in owner tokens, inspection.
import { InstanceRegistry } from './instance/instance-registry.js';
import { inspectionFor } from './inspection/inspection-for-store.js';
import { LockInspector, type LockListing } from './inspection/lock-inspector.js';
import type { LockInfo, LockListOptions } from './inspection/lock-info.interface.js';

/** Shortest bound on a single Redis call, even when the caller's own deadline is sooner (wait: 0). */
const MIN_CALL_TIMEOUT_MS = 1_000;
/** Bound on a release: the lease expires by itself anyway, so shutdown must not hang on it. */
const RELEASE_TIMEOUT_MS = 2_000;
/** Bound on one `inspect` (a few reads in one round trip; under Redlock, each master's). */
const INSPECT_TIMEOUT_MS = 2_000;
/** Pause before retrying an acquire that failed on a connection error, within the wait. */
const RETRY_AFTER_ERROR_MS = 100;

/** Keys held by the current async call chain, for reentrancy. */
type HeldInChain = ReadonlyMap<string, Lease>;

/**
 * Acquires, waits for and releases distributed locks. Injected wherever `LockModule` is imported
 * (or everywhere, with `isGlobal`).
 */
@Injectable()
export class LockService implements OnApplicationShutdown, LeaseOwner {
  private readonly logger = new Logger(LockService.name);
  private readonly keeper: LeaseKeeper;
  private readonly waiters = new ReleaseWaiters();
  /** Reentrancy scope: one per service, so two apps in one process never share holds. */
  private readonly chain = new AsyncLocalStorage<HeldInChain>();
  /** Every lease not yet released in Redis (held or lost), for shutdown. */
  private readonly leases = new Set<Lease>();
  /**
   * Leases of one key in the default mode that this service holds, by key: a caller of this
   * service that waits for such a key waits here, and the holder's release hands it the key.
   */
  private readonly soleHolds = new Map<string, Lease>();
  private readonly succession = new LocalSuccession();
  /** Keys whose sole hold's release is offering the key to a caller of this service right now. */
  private readonly offering = new Set<string>();
  /** Releases offering a key to a caller here, until they have run: shutdown lets them finish. */
  private readonly offers = new Set<Promise<void>>();
  /** Give-backs of keys an offer may have handed to callers who gave up: shutdown lets them finish. */
  private readonly offerGiveBacks = new Set<Promise<void>>();
  private listening = false;
  private closed = false;
  /** Lock events go here; when unset, no event is even built. */
  private readonly onEvent: LockEventListener | undefined;
  /** Campaigns of `lead()`, made on first use. */
  private leaders: LeaderElections | undefined;
  /** This service as a holder: its id is in every token it hands out; its record names it. */
  private readonly instance: InstanceRegistry;
  private readonly inspector: LockInspector | undefined;

  constructor(
    @Inject(LOCK_OPTIONS) private readonly options: ResolvedModuleOptions,
    @Inject(LOCK_STORE) private readonly store: LockStore,
    @Optional() @Inject(LOCK_TELEMETRY) telemetry?: LockTelemetry,
  ) {
    // Telemetry first: a user listener that throws must not cost the metrics their event.
    const listeners = [telemetry?.record, options.onEvent].filter((listener) => listener !== undefined);
    this.onEvent = listeners.length === 0 ? undefined : listeners.length === 1 ? listeners[0] : (event) => listeners.forEach((listener) => listener(event));
    const inspection = inspectionFor(store, options.prefix);
    this.inspector = inspection && new LockInspector(inspection);
    this.instance = new InstanceRegistry(inspection, options.ttl, options.appName);
    this.instance.start();
    store.hearOwnGrants?.(this.waiters.onRelease);
    this.keeper = new LeaseKeeper({
      renew: (leases) => this.store.extend(leases.map((lease) => renewalOf(lease, lease.ttl))),
      lost: (lease, reason) => this.loseLease(lease, reason),
      renewed: (lease) => {
        if (this.onEvent) this.emit({ type: 'extended', keys: lease.keys, ttl: lease.ttl, automatic: true });
      },
    });
  }

  /**
   * Takes the lock on one key, or on several keys all or nothing. Waits up to `wait` for a busy
   * lock, then rejects with `LockNotAcquiredError`. Release the returned lock when done.
   */
  async acquire(keys: string | readonly string[], options?: AcquireOptions): Promise<Lock> {
    const taken = await this.take(keys, resolveCallOptions(options, this.options), false);
    return (taken as { lock: Lock }).lock;
  }

  /** Like `acquire` but never waits: resolves `null` when any of the keys is busy. */
  async tryAcquire(keys: string | readonly string[], options?: AcquireOptions): Promise<Lock | null> {
    const call = resolveCallOptions(options, this.options);
    if (options?.wait !== undefined && options.wait !== 0) throw new LockConfigError(MESSAGES.tryAcquireWait(options.wait));
    const taken = await this.take(keys, { ...call, wait: 0 }, true);
    return taken?.lock ?? null;
  }

  /**
   * Runs `fn` while holding the lock and releases it afterwards, also when `fn` throws (the error is
   * rethrown unchanged). Inside `fn`, taking the same keys again succeeds at once (reentrancy).
   */
  async withLock<T>(
    keys: string | readonly string[],
    fn: (lock: Lock) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    if (typeof fn !== 'function') {
      throw new LockConfigError(MESSAGES.configCallOption('fn', fn, 'withLock(keys, fn, options?) expects a callback'));
    }
    const held = (await this.hold(keys, options, false)) as HeldScope;
    try {
      return await held.run(() => fn(held.lock));
    } finally {
      await held.lock.release();
    }
  }

  /**
   * @internal For `@WithLock`: takes the lock and returns a way to run code inside its reentrancy
   * scope; `null` (instead of LockNotAcquiredError) when `orNull` and the keys stayed busy.
   */
  async hold(keys: unknown, options: AcquireOptions | undefined, orNull: boolean): Promise<HeldScope | null> {
    const taken = await this.take(keys, resolveCallOptions(options, this.options), orNull);
    if (taken === null) return null;
    const scope = new Map(this.chain.getStore());
    taken.lock.keys.forEach((key, i) => scope.set(key, taken.leaseOfKey[i]));
    return { lock: taken.lock, run: (fn) => this.chain.run(scope, () => runWithCurrentLock(taken.lock, fn)) };
  }

  /**
   * Campaigns to lead `key`: once elected, calls `run(leadership)`; `leadership.signal` aborts when
   * leadership is lost or given up, `leadership.epoch` is the fence. When `run` returns or throws
   * (logged, then a backoff), or leadership is lost, it campaigns again, until the returned
   * campaign's `stop()` or application shutdown. See `LeadOptions` (`ttl`, `term`).
   */
  lead(key: string, run: (leadership: Leadership) => unknown, options?: LeadOptions): LeaderCampaign {
    this.leaders ??= new LeaderElections({
      acquire: (k, o) => this.acquire(k, o),
      emit: (event) => {
        if (this.onEvent) this.emit(event);
      },
      isClosed: () => this.closed,
    });
    return this.leaders.lead(key, run, options);
  }

  /** @internal Stops every campaign of `lead()` (resigning), before shutdown releases the locks. */
  async stopLeading(): Promise<void> {
    await this.leaders?.stopAll();
  }

  /** Whether any owner holds the key right now. */
  async isLocked(key: string): Promise<boolean> {
    assertValidKey(key);
    this.assertOpen();
    try {
      return await withTimeout(this.store.isLocked(key), MIN_CALL_TIMEOUT_MS);
    } catch (error) {
      throw new LockUnavailableError(MESSAGES.unavailableIsLocked(key), { cause: error });
    }
  }

  /**
   * Whether locks can be taken right now: a PING to each server behind the store (for Redlock,
   * whether a quorum of masters answers), each bounded by `timeoutMs`. Never rejects.
   */
  async health(timeoutMs = 1_000): Promise<StoreHealth> {
    if (this.closed) return { up: false, nodes: [{ node: 'service', up: false, error: MESSAGES.shutDown }] };
    return this.store.ping(timeoutMs);
  }

  /** This service's instance id: the holder id that `inspect`, `list` and the CLI show for its locks. */
  get instanceId(): string {
    return this.instance.id;
  }

  /**
   * Who holds `key` (instance: host, pid, app), since when, the lease left, the fence counter, the
   * mode (exclusive, each permit holder, each reader), and who waits. Owner tokens are never part
   * of it. Under Redlock: what the quorum says, and each master's view.
   */
  async inspect(key: string): Promise<LockInfo> {
    assertValidKey(key);
    this.assertOpen();
    try {
      return await withTimeout(this.requireInspector().inspect(key), INSPECT_TIMEOUT_MS);
    } catch (error) {
      throw new LockUnavailableError(`Could not inspect lock "${key}": the store did not answer (${String(error)})`, { cause: error });
    }
  }

  /**
   * Held keys, found with SCAN (every master of a Cluster) and reported like `inspect`: at most
   * `limit` (default 1 000), only those matching `match` (a Redis glob over the keys, e.g.
   * `'order:*'`). Iterate it with `for await`, or `await` it for an array.
   */
  list(options?: LockListOptions): LockListing {
    this.assertOpen();
    return this.requireInspector().list(options);
  }

  /** Counts of this instance: locks it holds now, and callers waiting for a lock. */
  get activity(): { instanceId: string; held: number; waiting: number } {
    let held = 0;
    for (const lease of this.leases) if (lease.state === 'held') held += 1;
    return { instanceId: this.instance.id, held, waiting: this.waiters.size + this.succession.size };
  }

  private requireInspector(): LockInspector {
    if (!this.inspector) throw new LockConfigError('This lock store cannot be inspected');
    return this.inspector;
  }

  /** @internal Counters of the lease scheduler, for tests and benchmarks. */
  get leaseStats(): LeaseKeeper['stats'] & { waiters: number; leases: number } {
    return { ...this.keeper.stats, waiters: this.waiters.size + this.succession.size, leases: this.leases.size };
  }

  /** Releases every lock still held, then closes the connections the module opened. */
  async onApplicationShutdown(): Promise<void> {
    if (this.closed) return;
    // Leaders resign first (normally already done in onModuleDestroy), so their successors take over at once.
    await this.stopLeading();
    this.closed = true;
    this.waiters.wakeAll(); // each waiter re-checks, sees the service closed and rejects
    this.succession.dismissAll();
    this.keeper.drain();
    const held = [...this.leases];
    this.leases.clear();
    this.soleHolds.clear();
    await Promise.all(
      held.map(async (lease) => {
        lease.lose(new LockLostError(MESSAGES.lost(lease.keys, MESSAGES.lostShutdown), lease.keys));
        lease.state = 'released';
        await withTimeout(this.store.release(lease.keys, lease.token, lease.shape), RELEASE_TIMEOUT_MS).catch((error: unknown) =>
          this.logger.warn(`Could not release ${lease.keys.join(', ')} on shutdown (${String(error)}); it expires after its ttl`),
        );
      }),
    );
    // A caller here that a release in flight is handing a key to finds the service closed once that
    // release has run, and gives the key back: before the connection closes, or the key would stay
    // taken until its ttl. (Woken callers have all ended their waits by the next turn of the loop.)
    await withTimeout(Promise.all(this.offers), RELEASE_TIMEOUT_MS).catch(() => undefined);
    await new Promise<void>((resolve) => setImmediate(resolve));
    await withTimeout(Promise.all(this.offerGiveBacks), RELEASE_TIMEOUT_MS).catch(() => undefined);
    await this.instance.stop();
    await this.store.close();
  }

  /** @internal Part of LeaseOwner: a Lock handle let go of its reference. */
  async unref(lease: Lease): Promise<void> {
    lease.refs -= 1;
    if (lease.refs > 0 || lease.state === 'releasing' || lease.state === 'released') return;
    const wasHeld = lease.state === 'held';
    if (wasHeld) lease.state = 'releasing';
    this.keeper.forget(lease);
    this.leases.delete(lease);
    const soleHold = this.soleHolds.get(lease.keys[0]) === lease;
    if (soleHold) this.soleHolds.delete(lease.keys[0]);
    const successor = soleHold && wasHeld ? this.succession.next(lease.keys[0]) : undefined;
    try {
      // Also for a lost lease: compare-and-delete cannot touch another owner's key, and it tidies
      // up keys of ours that Redis may still hold (e.g. a renewal reply that came too late).
      if (successor) await this.releaseToSuccessor(lease, successor);
      else await withTimeout(this.store.release(lease.keys, lease.token, lease.shape), RELEASE_TIMEOUT_MS);
    } catch (error) {
      if (wasHeld) {
        this.logger.warn(
          `Could not release ${lease.keys.map((k) => `"${k}"`).join(', ')} (${String(error)}); it expires after its ttl of ${lease.ttl} ms`,
        );
      }
    } finally {
      if (lease.state === 'releasing') lease.state = 'released';
    }
    if (this.onEvent && wasHeld) {
      this.emit({ type: 'released', keys: lease.keys, heldMs: Math.round(monotonicNow() - lease.acquiredAt) });
    }
  }

  /**
   * Releases a sole hold and offers the key to the first caller of this service waiting for it,
   * in the same script (see RELEASE_TO_SUCCESSOR_SCRIPT): the key goes to that caller unless a
   * waiter of another instance waits for it. The successor's lease counts from when this release
   * was sent, before the key can have become its own.
   */
  private async releaseToSuccessor(lease: Lease, candidate: SuccessionCandidate): Promise<void> {
    const key = candidate.key;
    const sentAt = monotonicNow();
    const releasing = (this.store.releaseToSuccessor as NonNullable<LockStore['releaseToSuccessor']>).call(
      this.store,
      key,
      lease.token,
      candidate.token,
      candidate.ttl,
    );
    const offer = releasing.then(
      () => undefined,
      () => undefined,
    );
    candidate.offer = offer;
    candidate.offeredAt = sentAt;
    this.offers.add(offer);
    void offer.then(() => this.offers.delete(offer));
    this.offering.add(key);
    let outcome: SuccessionOutcome | undefined;
    try {
      outcome = await withTimeout(releasing, RELEASE_TIMEOUT_MS);
    } finally {
      this.offering.delete(key);
      if (outcome?.successorFence !== undefined) {
        candidate.succeed({ fence: outcome.successorFence, sentAt });
      } else if (outcome?.handedTo?.startsWith(this.instance.id) && !candidate.left) {
        // Another caller of this service, queued in Redis, got it: the next release offers it again.
        candidate.offer = undefined;
        this.succession.putBack(candidate);
      } else {
        // The key went to another instance's waiter, is free, was not ours any more, or no answer
        // came: everyone waiting here asks Redis (an offer that ran after all shows as "granted earlier").
        candidate.dismiss();
        this.succession.dismiss(key);
      }
    }
  }

  /** @internal Part of LeaseOwner: `lock.extend(ttl)`. */
  async extendLease(lease: Lease, ttl: number | undefined): Promise<void> {
    const newTtl = ttl === undefined ? lease.ttl : positiveMs('ttl', ttl, MESSAGES.configCallOption);
    this.assertHeld(lease);
    const sentAt = monotonicNow();
    // A shorter ttl counts from now, whatever the reply says (or if none comes).
    lease.extendSent(sentAt, newTtl);
    this.keeper.schedule(lease);
    const previousExpiry = lease.expiresAt;
    let renewed: boolean | Error;
    try {
      [renewed] = await withTimeout(
        this.store.extend([renewalOf(lease, newTtl)]),
        Math.max(previousExpiry - sentAt, MIN_CALL_TIMEOUT_MS),
      );
    } catch (error) {
      renewed = error instanceof Error ? error : new Error(String(error));
    }
    this.assertHeld(lease);
    if (renewed instanceof Error) {
      throw new LockUnavailableError(MESSAGES.unavailable(lease.keys, 'extend'), { cause: renewed });
    }
    if (!renewed || monotonicNow() >= previousExpiry) {
      this.keeper.forget(lease);
      this.loseLease(lease, renewed ? 'unreachable' : 'owner');
      this.assertHeld(lease);
    }
    // Only a confirmed extend changes the lease length used by later renewals.
    lease.ttl = newTtl;
    lease.renewed(sentAt, newTtl);
    this.keeper.schedule(lease);
    if (this.onEvent) this.emit({ type: 'extended', keys: lease.keys, ttl: newTtl, automatic: false });
  }

  private async take(keysArg: unknown, call: ResolvedCallOptions, orNull: boolean): Promise<Taken | null> {
    const keys = normalizeKeys(keysArg);
    if (call.fair && keys.length > 1) throw new LockConfigError(MESSAGES.configFairMultiKey(keys));
    if (call.fair && this.options.backend.kind === 'redlock') throw new LockConfigError(MESSAGES.configNotWithRedlock('fair'));
    if (call.permits !== undefined && this.options.backend.kind === 'redlock') {
      throw new LockConfigError(MESSAGES.configNotWithRedlock('permits'));
    }
    if (call.mode === 'read' && this.options.backend.kind === 'redlock') throw new LockConfigError(MESSAGES.configNotWithRedlock('mode'));
    this.assertOpen();
    // Reentrancy: keys this call chain already holds are shared, not taken again.
    const held = this.chain.getStore();
    const reentered = keys.map((key) => {
      const lease = held?.get(key);
      if (lease?.state !== 'held') return undefined;
      assertReentryAllowed(key, lease.shape, call);
      return lease;
    });
    const missing = keys.filter((_, i) => reentered[i] === undefined);
    let own: Lease | undefined;
    if (missing.length > 0) {
      const lease = await this.acquireLease(missing, call, orNull);
      if (lease === null) return null;
      own = lease;
    }
    const leaseOfKey = keys.map((_, i) => reentered[i] ?? (own as Lease));
    for (const lease of new Set(reentered)) if (lease) lease.refs += 1;
    return { lock: new Lock(keys, leaseOfKey, own, this), leaseOfKey };
  }

  /** One acquisition in Redis, waiting (by release notification, with a slow poll as safety net). */
  private async acquireLease(keys: string[], call: ResolvedCallOptions, orNull: boolean): Promise<Lease | null> {
    const token = this.instance.tokens.next();
    const start = monotonicNow();
    const deadline = start + call.wait;
    // Fair waiters sit in a Redis queue and must refresh their place there while they wait.
    const pollInterval = call.fair ? Math.min(this.options.pollInterval, call.ttl / 3) : this.options.pollInterval;
    // A caller that waits is queued in Redis when the key is busy (fair: in order; otherwise one
    // key, exclusive or a permit, for a direct handoff by the release). `attempt` is renumbered before each
    // attempt: a grant names the attempt that queued us.
    const queued =
      call.fair || (call.wait > 0 && keys.length === 1 && call.mode !== 'read')
        ? { presenceTtl: Math.ceil(pollInterval * 3), attempt: 0 }
        : undefined;
    const fair = call.fair ? queued : undefined;
    /** Queued waits: when each attempt was sent, by its number. */
    const sentAtOfAttempt = queued ? new Map<number, number>() : undefined;
    /**
     * Attempts up to this number were sent before this wait last gave its token's hold back (after
     * a failed attempt or a refused grant). A grant from an entry one of them queued may have been
     * given back by that release already, so it must be confirmed by asking again; an attempt sent
     * later runs after that release (it is only sent once the release has run: see givingBack), and
     * so does any grant from its entry.
     */
    let sentBeforeGiveBack = 0;
    /**
     * This token's give-backs, until they have run in Redis. No attempt is sent before they settle:
     * an attempt carries the same token, and a give-back that Redis runs after it (ioredis re-sends
     * a script Redis answered NOSCRIPT to, after whatever was sent meanwhile) would delete the hold
     * that attempt was just granted.
     */
    let givingBack: Promise<void> | undefined;
    // A waiter tries again at least every 1.25 poll intervals, refreshing the mark that makes the
    // holder's release announce itself.
    const intent: WaitIntent = {
      announceFor: call.wait > 0 ? Math.ceil(pollInterval * 2.5) : 0,
      fair,
      queue: fair ? undefined : queued,
      permits: call.permits,
      mode: call.mode,
    };
    const shape: LeaseShape = { fair: call.fair, permits: call.permits, mode: call.mode };
    /** Set while this caller waits for a key this service holds, to be handed it by the release. */
    let candidate: SuccessionCandidate | undefined;
    let waiter: Waiter | undefined;
    let busyKey: string | undefined;
    /** When the last attempt that found the key busy was sent: a fair grant happened after it. */
    let lastBusySentAt = start;
    let acquired = false;
    /** Settles once Redis has answered the last attempt this wait gave up on (undefined: none). */
    let unanswered: Promise<boolean> | undefined;
    if (queued) this.waiters.expect(token);
    try {
      // One key in the default mode, held by this very service: wait for its release here, not in
      // Redis. Only before the first attempt: a caller queued in Redis is handed the key from there.
      let succession: Succession | undefined;
      if (queued && this.passesLocally(keys, shape) && this.holdsHere(keys[0])) {
        candidate = new SuccessionCandidate(keys[0], token, call.ttl, new Waiter(this.waiters, keys[0], token));
        this.succession.join(candidate);
        succession = await this.awaitSuccession(candidate, call, deadline, pollInterval);
        // Asking Redis now: a key found to be ours already ("granted earlier") was given to us by
        // the last offer, so its lease counts from when that release was sent.
        if (!succession && candidate.offeredAt !== undefined) lastBusySentAt = candidate.offeredAt;
      }
      for (;;) {
        if (call.signal?.aborted) throw call.signal.reason;
        this.assertOpen();
        let busy: BusyOutcome | undefined;
        let failure: unknown;
        let grant: { fences: number[]; leaseStart: number } | undefined;
        if (succession) {
          grant = { fences: [succession.fence], leaseStart: succession.sentAt };
          succession = undefined;
        }
        // A release that handed the key to us: its message may have waited (a paused
        // process, a slow subscriber) while the lease it granted ran out. When it names the
        // attempt that queued us, the grant happened after that attempt ran, so the lease is
        // counted from when we sent it (admit's clock check then refuses a lease that ran out).
        // A grant that names no attempt (queued by an earlier version, or the memory store) is
        // only a reason to ask again: still ours ("granted earlier", counted from before our last
        // busy attempt, which ran before the grant), or busy, or free.
        const handed = waiter?.granted;
        if (waiter) waiter.granted = undefined;
        waiter?.consumeWake();
        const handedSentAt =
          handed?.attempt === undefined || handed.attempt <= sentBeforeGiveBack ? undefined : sentAtOfAttempt?.get(handed.attempt);
        if (grant) {
          // Handed over by this service's own release (above).
        } else if (handed && handedSentAt !== undefined) {
          grant = { fences: [handed.fence], leaseStart: handedSentAt };
        } else {
          if (givingBack) {
            try {
              await withTimeout(givingBack, Math.max(deadline - monotonicNow(), MIN_CALL_TIMEOUT_MS));
            } catch (error) {
              throw new LockUnavailableError(MESSAGES.unavailable(keys, 'acquire'), { cause: error });
            }
            givingBack = undefined;
          }
          const sentAt = monotonicNow();
          if (queued) {
            queued.attempt += 1;
            sentAtOfAttempt?.set(queued.attempt, sentAt);
          }
          let outcome: AcquireOutcome | undefined;
          const attempt = this.store.acquire(keys, token, call.ttl, intent);
          try {
            outcome = await withTimeout(attempt, Math.max(deadline - sentAt, MIN_CALL_TIMEOUT_MS));
          } catch (error) {
            failure = error;
            // The attempt may still run after we gave up on it: release behind it, and again once
            // Redis has answered it (unless busy). An attempt answered NOSCRIPT is re-sent after
            // whatever was sent meanwhile, so it may run after the first release and keep its hold.
            unanswered = attempt.then(
              (outcome) => outcome.acquired,
              () => true,
            );
            givingBack = this.giveBack(keys, token, shape, givingBack, unanswered);
            sentBeforeGiveBack = queued?.attempt ?? 0;
          }
          if (outcome?.acquired) {
            grant = { fences: outcome.fences, leaseStart: outcome.grantedEarlier ? lastBusySentAt : sentAt };
          } else if (outcome?.permitsInUse !== undefined) {
            throw new LockConfigError(MESSAGES.configPermitsMismatch(outcome.busyKey, call.permits, outcome.permitsInUse));
          } else if (outcome) {
            busy = outcome;
            lastBusySentAt = sentAt;
          }
        }
        if (grant) {
          // Most stores have nothing to confirm: then the gate decides without a turn of the event loop.
          const confirming = this.store.confirmGrant?.(keys, token, shape, call.ttl);
          const refused = confirming && (await this.confirmation(confirming, grant.leaseStart, call.ttl, deadline));
          failure = this.admit(grant.leaseStart, call, refused);
          if (failure === undefined) {
            acquired = true;
            return this.holdLease(keys, token, grant.fences, call, grant.leaseStart, shape, start);
          }
          givingBack = this.giveBack(keys, token, shape, givingBack);
          sentBeforeGiveBack = queued?.attempt ?? 0;
          // Callers lined up here for the key may have waited for this grant to become a sole hold.
          this.settleLine(keys[0]);
          // Not held after all: an attempt that failed, retried within the wait.
        }
        if (busy && waiter?.granted !== undefined) continue; // handed over while we were asking

        const now = monotonicNow();
        if (now >= deadline) {
          if (busy === undefined) throw new LockUnavailableError(unavailableMessage(keys, failure), { cause: failure });
          const waitedMs = Math.round(now - start);
          if (this.onEvent) this.emit({ type: 'busy', keys, waitedMs, outcome: orNull ? 'gaveUp' : 'timedOut' });
          if (orNull) return null;
          throw new LockNotAcquiredError(
            MESSAGES.notAcquired(keys, busy.busyKey, waitedMs, call.wait),
            keys,
            waitedMs,
            busy.busyForMs,
          );
        }
        let pause = RETRY_AFTER_ERROR_MS;
        if (busy) {
          busyKey = busy.busyKey;
          if (waiter) waiter.moveTo(busyKey);
          else waiter = this.waiters.enqueue(busyKey, token);
          // Subscribed just now: a release before that was not heard, so look again at once.
          if (!this.listening && (await this.startListening(Math.min(deadline, now + pollInterval)))) continue;
          if (!fair && this.waiters.releasedSince(busyKey, lastBusySentAt)) continue;
          pause = pollInterval * (0.75 + Math.random() * 0.5);
          // A lease that runs out without a release announces nothing: look again when it should have.
          if (busy.busyForMs >= 0) pause = Math.min(pause, busy.busyForMs + 1);
        }
        waiter ??= this.waiters.enqueue(busyKey ?? keys[0], token);
        const woke = await waiter.sleep(Math.min(pause, deadline - now), call.signal);
        if (woke === 'aborted') throw (call.signal as AbortSignal).reason;
      }
    } finally {
      if (candidate) this.endCandidacy(candidate, acquired, keys, token, shape);
      // A wait that ended without a sole hold (fair, refused, given up) may be the one a line of
      // callers here was put back to wait for (see releaseToSuccessor): they ask Redis instead.
      if (queued) this.settleLine(keys[0]);
      waiter?.dispose();
      if (queued) this.waiters.forget(token);
      // A queued waiter that gives up leaves the queue, passing on the lock if it was just granted.
      // Again once the last attempt given up on is answered, as for the give-back (busy answers too: they queue).
      if (queued && queued.attempt > 0 && !acquired) {
        const leave = () => this.store.leaveQueue(keys[0], token, call.ttl, shape).catch(() => undefined);
        void leave();
        if (unanswered) void unanswered.then(leave);
      }
    }
  }

  /**
   * The one gate every grant passes before it counts as held, however it came (taken by an
   * attempt, handed over by a fair release, granted by a Redlock quorum): the store's own
   * confirmation (e.g. `waitForReplicas`; `refused` is why it failed, see {@link confirmation}),
   * then the clock. A lease whose reply came back after it had already run out (counted from when
   * the attempt was sent) is a loss, not a hold. Returns why the grant does not count (the caller
   * then gives the lock back), or undefined when it does.
   */
  private admit(leaseStart: number, call: ResolvedCallOptions, refused: unknown): unknown {
    if (refused !== undefined) return refused;
    if (monotonicNow() >= leaseStart + call.ttl - driftAllowance(call.ttl)) {
      return new LeaseRanOutError(call.ttl, Math.round(monotonicNow() - leaseStart));
    }
    return undefined;
  }

  /**
   * Gives back whatever this token holds on `keys`: a release sent now (on the connection, behind
   * the attempt it follows), and again once `answered` (an attempt still under way) says it may
   * have left a hold. Settles when they and `pending` (an earlier give-back still under way) have
   * run in Redis or failed for good; never rejects.
   */
  private giveBack(
    keys: readonly string[],
    token: string,
    shape: LeaseShape,
    pending: Promise<void> | undefined,
    answered?: Promise<boolean>,
  ): Promise<void> {
    const send = () =>
      this.store.release(keys, token, shape).then(
        () => undefined,
        () => undefined,
      );
    const now = send();
    const release = answered ? Promise.all([now, answered.then((mayHold) => (mayHold ? send() : undefined))]).then(() => undefined) : now;
    return pending ? Promise.all([pending, release]).then(() => undefined) : release;
  }

  /**
   * Sleeps until this service's release of the key hands it to the candidate (the succession), or
   * the candidate must ask Redis like any waiter (undefined): dismissed, the holder no longer holds
   * the key and made no offer, or the wait is over (a last attempt then decides, as for any waiter).
   */
  private async awaitSuccession(
    candidate: SuccessionCandidate,
    call: ResolvedCallOptions,
    deadline: number,
    pollInterval: number,
  ): Promise<Succession | undefined> {
    for (;;) {
      if (candidate.succeeded) return candidate.succeeded;
      if (call.signal?.aborted) throw call.signal.reason;
      this.assertOpen();
      const now = monotonicNow();
      const holderLeft = candidate.offer === undefined && !this.holdsHere(candidate.key);
      if (candidate.dismissed || holderLeft || now >= deadline) {
        this.succession.leave(candidate);
        return undefined;
      }
      const woke = await candidate.waiter.sleep(Math.min(pollInterval, deadline - now), call.signal);
      if (woke === 'aborted') throw (call.signal as AbortSignal).reason;
    }
  }

  /**
   * Holds of this shape are handed from caller to caller of this service by the release (local
   * succession): one key, exclusive, not fair, on a store that can do it.
   */
  private passesLocally(keys: readonly string[], shape: LeaseShape): boolean {
    return keys.length === 1 && !shape.fair && shape.permits === undefined && shape.mode !== 'read' && this.store.releaseToSuccessor !== undefined;
  }

  /** Sends the callers lined up for `key` to Redis, unless this service still holds it or is offering it. */
  private settleLine(key: string): void {
    if (!this.holdsHere(key)) this.succession.dismiss(key);
  }

  /** This service holds `key` alone (one key, default mode), or its release is offering it to a caller here. */
  private holdsHere(key: string): boolean {
    return this.soleHolds.get(key)?.state === 'held' || this.offering.has(key);
  }

  /**
   * A candidate's wait is over. One that did not end up holding the key gives back whatever an
   * offer may have handed it, once that offer has run in Redis (a give-back sent earlier could run
   * first and miss it), and the callers still waiting here then ask Redis.
   */
  private endCandidacy(candidate: SuccessionCandidate, acquired: boolean, keys: string[], token: string, shape: LeaseShape): void {
    this.succession.leave(candidate);
    if (acquired || candidate.offer === undefined) return;
    const givingBack = candidate.offer
      .then(() => this.store.release(keys, token, shape))
      .catch(() => undefined)
      .then(() => this.settleLine(candidate.key));
    this.offerGiveBacks.add(givingBack);
    void givingBack.then(() => this.offerGiveBacks.delete(givingBack));
  }

  /** Waits for the store's confirmation of a grant, bounded by the lease and the wait: why it failed, or undefined. */
  private async confirmation(confirming: Promise<void>, leaseStart: number, ttl: number, deadline: number): Promise<unknown> {
    try {
      await withTimeout(confirming, Math.max(Math.min(deadline, leaseStart + ttl) - monotonicNow(), MIN_CALL_TIMEOUT_MS));
      return undefined;
    } catch (error) {
      return error;
    }
  }

  private holdLease(
    keys: string[],
    token: string,
    fences: number[],
    call: ResolvedCallOptions,
    sentAt: number,
    shape: LeaseShape,
    waitStart: number,
  ): Lease {
    if (this.closed) {
      this.releaseQuietly(keys, token, shape);
      throw new LockUnavailableError(MESSAGES.shutDown);
    }
    const holdDeadline = call.maxHold === undefined ? undefined : sentAt + call.maxHold;
    const lease = new Lease(keys, token, fences, call.ttl, sentAt, call.autoExtend, holdDeadline, call.maxHold);
    lease.shape = shape;
    this.leases.add(lease);
    if (this.passesLocally(keys, shape)) this.soleHolds.set(keys[0], lease);
    this.keeper.schedule(lease);
    if (this.onEvent) this.emit({ type: 'acquired', keys, fences, waitedMs: Math.round(monotonicNow() - waitStart) });
    return lease;
  }

  private startListening(until: number): Promise<boolean> {
    const listening = this.store.listenForReleases(this.waiters.onRelease).then(() => {
      this.listening = true;
    });
    return withTimeout(listening, Math.max(0, until - monotonicNow())).then(
      () => true,
      () => false,
    );
  }

  /** The lease can no longer be guaranteed: abort its signal and say so, once. */
  private loseLease(lease: Lease, reason: LeaseLossReason): void {
    const why = {
      owner: MESSAGES.lostOwner,
      unreachable: MESSAGES.lostUnreachable(lease.ttl),
      expired: MESSAGES.lostExpired(lease.ttl),
      maxHold: MESSAGES.lostMaxHold(lease.maxHold ?? 0),
    }[reason];
    const error = new LockLostError(MESSAGES.lost(lease.keys, why), lease.keys);
    // The key is not deleted here: the holder may still be running, so it keeps whatever is left of
    // its lease, and releasing the handle tidies up.
    if (!lease.lose(error)) return;
    if (this.soleHolds.get(lease.keys[0]) === lease) {
      // Its callers waiting here would wait for a release that may never hand anything over.
      this.soleHolds.delete(lease.keys[0]);
      this.succession.dismiss(lease.keys[0]);
    }
    this.logger.warn(error.message);
    if (this.onEvent) this.emit({ type: 'lost', keys: lease.keys, heldMs: Math.round(monotonicNow() - lease.acquiredAt), error });
  }

  /** Hands an event to the user's listener; a listener that throws must not break locking. */
  private emit(event: LockEvent): void {
    try {
      this.onEvent?.(event);
    } catch (error) {
      this.logger.warn(`onEvent listener threw on a "${event.type}" event: ${String(error)}`);
    }
  }

  private assertHeld(lease: Lease): void {
    if (lease.state === 'held') return;
    const reason: unknown = lease.signal.reason;
    throw reason instanceof LockLostError ? reason : new LockLostError(MESSAGES.lost(lease.keys, MESSAGES.lostReleased), lease.keys);
  }

  private assertOpen(): void {
    if (this.closed) throw new LockUnavailableError(MESSAGES.shutDown);
  }

  private releaseQuietly(keys: readonly string[], token: string, shape: LeaseShape): void {
    this.store.release(keys, token, shape).catch(() => undefined);
  }
}

/** Why an acquire ended without a lock although Redis may have answered: say what happened. */
function unavailableMessage(keys: readonly string[], failure: unknown): string {
  if (failure instanceof LeaseRanOutError) return MESSAGES.unavailableLate(keys, failure.ttl, failure.tookMs);
  if (failure instanceof ReplicaShortfallError) {
    return MESSAGES.replicaShortfall(keys, failure.acknowledged, failure.wanted, failure.timeoutMs);
  }
  return MESSAGES.unavailable(keys, 'acquire');
}

/**
 * Reentry shares a hold the chain already has, so it is only allowed where that hold covers what is
 * asked: an exclusive hold covers everything; a shared hold (readers, permits) covers only the
 * same kind. Anything else would wait for itself (a reader asking to write, a permit holder asking
 * for the exclusive lock or to read) or silently run an "exclusive" section beside other permit
 * holders, so it is refused.
 */
function assertReentryAllowed(key: string, held: LeaseShape, wanted: ResolvedCallOptions): void {
  const heldKind = kindOf(held);
  const wantedKind = kindOf(wanted);
  if (heldKind === 'exclusive' || heldKind === wantedKind) {
    if (held.permits !== undefined && wanted.permits !== undefined && held.permits !== wanted.permits) {
      throw new LockConfigError(MESSAGES.configPermitsMismatch(key, wanted.permits, held.permits));
    }
    return;
  }
  if (heldKind === 'read' && wantedKind === 'exclusive') throw new LockConfigError(MESSAGES.upgradeRefused(key));
  throw new LockConfigError(MESSAGES.reentryRefused(key, heldKind, wantedKind));
}

function kindOf(shape: { permits?: number; mode?: 'read' | 'exclusive' }): 'exclusive' | 'read' | 'permits' {
  if (shape.mode === 'read') return 'read';
  return shape.permits === undefined ? 'exclusive' : 'permits';
}

/** What the store needs to renew a lease to `ttl`: the keys, owner and kind of hold. */
function renewalOf(lease: Lease, ttl: number): Renewal {
  return {
    keys: lease.keys,
    token: lease.token,
    ttl,
    permits: lease.shape.permits,
    mode: lease.shape.mode,
    fences: lease.fences,
    stillHeld: () => lease.state === 'held',
  };
}

/** A lock just taken, and a way to run code inside its reentrancy scope. */
export interface HeldScope {
  lock: Lock;
  run<T>(fn: () => T): T;
}

type BusyOutcome = Extract<AcquireOutcome, { acquired: false }>;

interface Taken {
  lock: Lock;
  leaseOfKey: Lease[];
}
