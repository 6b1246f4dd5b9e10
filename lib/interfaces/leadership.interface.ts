/**
 * One term of leadership, given to the `run` callback of `LockService.lead` and to `@Leader`
 * methods. It ends when the lease is lost, on `resign()`, on the campaign's `stop()`, when its
 * `term` runs out, or when the application shuts down; `signal` aborts at that moment.
 */
export interface Leadership {
  /** The election key (without prefix). */
  readonly key: string;
  /**
   * The fence of the lock that made this instance leader: strictly larger for every new leader of
   * the key. Send it with every write to the resource the leader manages and have the resource
   * refuse writes carrying a smaller epoch than it has seen: a leader that was paused past its lease
   * then cannot overwrite the work of its successor.
   */
  readonly epoch: number;
  /**
   * Aborts (reason: `LockLostError`) when leadership ends: lease lost, `resign()`, `stop()`, `term`
   * over, or shutdown. Reading it also checks the lease against the clock, so a leader resumed
   * after a pause longer than its lease sees it aborted before its lease keeper has run.
   */
  readonly signal: AbortSignal;
  /**
   * Epoch ms until which the lease is known to be held (renewed in the background while leading).
   * The previous leader's `expiresAt` is never later than the moment a successor is elected.
   */
  readonly expiresAt: number;
  /**
   * Gives leadership up now: aborts `signal` and releases the lock, so a waiting candidate takes
   * over at once. The campaign goes on (this instance may be elected again later). Never rejects.
   */
  resign(): Promise<void>;
}

/** What `LockService.lead` returns: a campaign for a key, running until `stop()` or shutdown. */
export interface LeaderCampaign {
  /** The election key (without prefix). */
  readonly key: string;
  /** True while this instance leads (its leadership has not ended). */
  readonly isLeader: boolean;
  /** The current leadership while this instance leads, else undefined. */
  readonly leadership: Leadership | undefined;
  /**
   * Stops campaigning and resigns if leading: the lock is released at once (a waiting candidate
   * takes over without waiting for the ttl). Resolves once released and once `run` has returned
   * (waiting at most 10 s for a `run` that ignores its signal). Never rejects; a second call waits
   * for the same end.
   */
  stop(): Promise<void>;
}

/** Options of `LockService.lead` and `@Leader` (times in ms). */
export interface LeadOptions {
  /**
   * Lease length of the leadership lock (default: the module's `ttl`). It is renewed while this
   * instance leads; a leader that dies is replaced once it runs out, so it bounds the takeover time.
   */
  ttl?: number;
  /**
   * Longest single term: after this long, the leader resigns on its own (signal aborts, lock
   * released) and campaigns again after a short pause, so another candidate can take over. Spreads
   * a long-lived job over instances (rolling load). Default: no limit.
   */
  term?: number;
}

/** Why a leadership ended without being lost. */
export type ResignReason = 'returned' | 'threw' | 'resign' | 'stop' | 'term' | 'shutdown';
