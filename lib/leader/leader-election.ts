import { Logger } from '@nestjs/common';
import { monotonicNow } from '../clock.js';
import { LockConfigError, LockKeyError, LockLostError, LockNotAcquiredError, LockUnavailableError } from '../errors.js';
import type { LeaderEvent } from '../interfaces/lock-event.interface.js';
import type { LeadOptions, LeaderCampaign, Leadership, ResignReason } from '../interfaces/leadership.interface.js';
import type { AcquireOptions } from '../interfaces/lock-options.interface.js';
import { assertValidKey } from '../lock-keys.js';
import { MESSAGES } from '../lock.messages.js';
import { positiveMs } from '../lock-options.validation.js';
import type { Lock } from '../lock.js';

/**
 * How long one campaign round waits for the lock before asking again. Waiting is woken by the
 * leader's release (and by its lease running out), so this only bounds a single acquire call; a
 * round that ends busy just starts the next one.
 */
const CAMPAIGN_WAIT_MS = 30_000;
/** Backoff after a failed campaign round or a run that threw: 100 ms doubling up to 5 s, jittered. */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** Pause before campaigning again after giving leadership up, so a waiting candidate takes over. */
const HANDOVER_PAUSE_MS = 100;
/** How long `stop()` waits for a run that ignores its aborted signal. */
const STOP_RUN_GRACE_MS = 10_000;

const LEAD_OPTION_NAMES = ['ttl', 'term'] as const;

/** What an election needs from the LockService that runs it. */
export interface LeaderHost {
  acquire(key: string, options: AcquireOptions): Promise<Lock>;
  /** Reports a leader event to `onEvent` (never throws). */
  emit(event: LeaderEvent): void;
  /** The service has shut down: no campaign can go on. */
  isClosed(): boolean;
}

export type LeaderRun = (leadership: Leadership) => unknown;

export interface ResolvedLeadOptions {
  ttl: number | undefined;
  term: number | undefined;
}

/** Validates lead/@Leader options; every failure is a LockConfigError naming the option and value. */
export function resolveLeadOptions(options: unknown, message: (option: string, value: unknown, rule: string) => string = MESSAGES.leaderOption): ResolvedLeadOptions {
  if (options === undefined) return { ttl: undefined, term: undefined };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new LockConfigError(message('options', options, 'expected an options object like { ttl: 10_000 }'));
  }
  for (const name of Object.keys(options)) {
    if (!(LEAD_OPTION_NAMES as readonly string[]).includes(name)) {
      throw new LockConfigError(MESSAGES.leaderUnknownOption(name, LEAD_OPTION_NAMES));
    }
  }
  const given = options as LeadOptions;
  return {
    ttl: given.ttl === undefined ? undefined : positiveMs('ttl', given.ttl, message),
    term: given.term === undefined ? undefined : positiveMs('term', given.term, message),
  };
}

/**
 * The leader elections of one LockService: every campaign it started, so that shutdown stops them
 * all (resigning, so another instance takes over at once) before the service releases its locks.
 */
export class LeaderElections {
  private readonly campaigns = new Set<Campaign>();
  private closed = false;

  constructor(private readonly host: LeaderHost) {}

  lead(key: string, run: LeaderRun, options?: LeadOptions): LeaderCampaign {
    assertValidKey(key);
    if (typeof run !== 'function') throw new LockConfigError(MESSAGES.leaderRun(run));
    const resolved = resolveLeadOptions(options);
    if (this.closed || this.host.isClosed()) throw new LockUnavailableError(MESSAGES.shutDown);
    const campaign = new Campaign(key, run, resolved, this.host);
    this.campaigns.add(campaign);
    void campaign.finished.then(() => this.campaigns.delete(campaign));
    return campaign;
  }

  /** Stops every campaign (resigning where leading); later `lead` calls throw. Never rejects. */
  async stopAll(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.campaigns].map((campaign) => campaign.stopFor('shutdown')));
  }
}

/** One campaign: campaigns for the key, leads while elected, and campaigns again, until stopped. */
class Campaign implements LeaderCampaign {
  private readonly logger = new Logger('LeaderElection');
  /** Aborts an acquire waiting for the lock and any pause, on stop. */
  private readonly stopper = new AbortController();
  private current: Term | undefined;
  private stopping: Promise<void> | undefined;
  /** Settles (never rejects) when the campaign loop has ended. */
  readonly finished: Promise<void>;

  constructor(
    readonly key: string,
    private readonly run: LeaderRun,
    private readonly options: ResolvedLeadOptions,
    private readonly host: LeaderHost,
  ) {
    this.finished = this.campaign().catch((error: unknown) => {
      this.logger.error(`Campaign for leader of "${key}" ended unexpectedly: ${String(error)}`, (error as Error)?.stack);
    });
  }

  get isLeader(): boolean {
    return this.current !== undefined && this.current.ended === undefined;
  }

  get leadership(): Leadership | undefined {
    return this.isLeader ? this.current : undefined;
  }

  stop(): Promise<void> {
    return this.stopFor('stop');
  }

  stopFor(reason: ResignReason): Promise<void> {
    this.stopping ??= (async () => {
      this.stopper.abort(new LockLostError(MESSAGES.leaderEnded(this.key, MESSAGES.leaderWhy[reason]), [this.key]));
      // Released at once, whatever run does: the next candidate need not wait for it.
      await this.current?.end(reason);
      let timer: NodeJS.Timeout | undefined;
      const slow = new Promise<'slow'>((resolve) => (timer = setTimeout(() => resolve('slow'), STOP_RUN_GRACE_MS)));
      const outcome = await Promise.race([this.finished, slow]);
      clearTimeout(timer);
      if (outcome === 'slow') this.logger.warn(MESSAGES.leaderStopSlow(this.key, STOP_RUN_GRACE_MS));
    })();
    return this.stopping;
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async campaign(): Promise<void> {
    let campaignFailures = 0;
    let runFailures = 0;
    let campaignStart = monotonicNow();
    while (!this.stopped) {
      let lock: Lock;
      try {
        lock = await this.host.acquire(this.key, { ttl: this.options.ttl, wait: CAMPAIGN_WAIT_MS, autoExtend: true, signal: this.stopper.signal });
      } catch (error) {
        if (this.stopped || this.host.isClosed()) return;
        if (error instanceof LockNotAcquiredError) continue; // another instance leads: keep waiting
        if (error instanceof LockConfigError || error instanceof LockKeyError) {
          // Not going to get better by retrying.
          this.logger.error(`Campaign for leader of "${this.key}" stopped: ${error.message}`);
          return;
        }
        campaignFailures += 1;
        const delay = backoff(campaignFailures);
        this.logger.warn(`${MESSAGES.leaderCampaignFailed(this.key, delay)}: ${String(error)}`);
        await this.pause(delay);
        continue;
      }
      campaignFailures = 0;
      if (this.stopped) {
        await lock.release();
        return;
      }

      const term = new Term(this.key, lock, this.host, this.options.term);
      this.current = term;
      this.host.emit({ type: 'elected', keys: [this.key], leader: true, epoch: term.epoch, waitedMs: Math.round(monotonicNow() - campaignStart) });
      let outcome: 'returned' | 'threw' = 'returned';
      let failure: unknown;
      try {
        await this.run(term);
      } catch (error) {
        outcome = 'threw';
        failure = error;
      }
      await term.end(outcome); // no-op when it already ended (lost, resigned, stopped)
      if (this.current === term) this.current = undefined;
      const ledMs = monotonicNow() - term.startedAt;
      campaignStart = monotonicNow();
      if (outcome === 'threw') {
        // A run that failed after leading a long while starts over at the shortest delay.
        runFailures = ledMs > BACKOFF_MAX_MS ? 1 : runFailures + 1;
        const delay = backoff(runFailures);
        this.logger.error(`${MESSAGES.leaderRunFailed(this.key, delay)}: ${String(failure)}`, (failure as Error)?.stack);
        if (this.stopped) return;
        await this.pause(delay);
      } else {
        runFailures = 0;
        if (this.stopped) return;
        // Gave leadership up (run returned, resign, term): let a waiting candidate take it first.
        if (term.ended !== 'lost') await this.pause(HANDOVER_PAUSE_MS * (1 + Math.random()));
      }
    }
  }

  /** Sleeps, cut short by stop(). */
  private pause(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.stopper.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopper.signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** One term of leadership: the lock that won the election, and the signal that ends the term. */
class Term implements Leadership {
  readonly epoch: number;
  readonly startedAt = monotonicNow();
  /** How the term ended, once it has. */
  ended: ResignReason | 'lost' | undefined;
  private readonly controller = new AbortController();
  private readonly onLockLost = (): void => this.lose(this.lock.signal.reason as Error);
  private termTimer: NodeJS.Timeout | undefined;
  private released: Promise<void> | undefined;

  constructor(
    readonly key: string,
    private readonly lock: Lock,
    private readonly host: LeaderHost,
    term: number | undefined,
  ) {
    this.epoch = lock.fence;
    if (lock.signal.aborted) this.onLockLost();
    else lock.signal.addEventListener('abort', this.onLockLost, { once: true });
    if (term !== undefined && this.ended === undefined) {
      this.termTimer = setTimeout(() => void this.end('term'), Math.min(term, 2_147_483_647));
    }
  }

  get signal(): AbortSignal {
    // A process resumed after a pause longer than its lease may run this before the lease
    // keeper's timer: the clock says whether the lease still holds, so the leader never sees an
    // unaborted signal after its lease ran out (and so after a successor may have been elected).
    if (this.ended === undefined && this.lock.expiresAt <= Date.now()) {
      this.lose(new LockLostError(MESSAGES.lost([this.key], MESSAGES.leaderWhy.expired), [this.key]));
    }
    return this.controller.signal;
  }

  get expiresAt(): number {
    return this.lock.expiresAt;
  }

  resign(): Promise<void> {
    return this.end('resign');
  }

  /** Ends the term voluntarily: signal aborted, lock released. Resolves once released; never rejects. */
  end(reason: ResignReason): Promise<void> {
    if (this.ended === undefined) {
      this.ended = reason;
      this.finish(new LockLostError(MESSAGES.leaderEnded(this.key, MESSAGES.leaderWhy[reason]), [this.key]));
      const heldMs = Math.round(monotonicNow() - this.startedAt);
      this.released = this.lock.release().then(() =>
        this.host.emit({ type: 'resigned', keys: [this.key], leader: true, epoch: this.epoch, heldMs, reason }),
      );
    }
    return this.released ?? Promise.resolve();
  }

  /** The lease can no longer be guaranteed: the term ends at once. */
  private lose(error: Error): void {
    if (this.ended !== undefined) return;
    this.ended = 'lost';
    this.finish(error);
    this.host.emit({ type: 'lost', keys: [this.key], leader: true, epoch: this.epoch, heldMs: Math.round(monotonicNow() - this.startedAt), error });
    // Tidies up: compare-and-delete cannot touch a successor's lock.
    this.released = this.lock.release();
  }

  private finish(reason: Error): void {
    clearTimeout(this.termTimer);
    this.lock.signal.removeEventListener('abort', this.onLockLost);
    this.controller.abort(reason);
  }
}

/** Exponential backoff with jitter: 100 ms doubling to 5 s, times 0.5 to 1. */
function backoff(failures: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(failures - 1, 16));
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}
