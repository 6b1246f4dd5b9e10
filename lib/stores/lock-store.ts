/** The answer to one acquire attempt over one or more keys. */
export type AcquireOutcome =
  | {
      acquired: true;
      /** fencing token per key, in the order asked */
      fences: number[];
      /** a fair release had already handed the key to this token before the attempt arrived */
      grantedEarlier?: boolean;
    }
  | {
      acquired: false;
      /** the first key found held */
      busyKey: string;
      /** its remaining lease in ms (for a semaphore: until its first permit frees), or -1 if unknown */
      busyForMs: number;
      /** semaphore only: the key's holders use this many permits, not the number asked for */
      permitsInUse?: number;
    };

/** A release heard from the store: plain, or handed straight to a fair waiter. */
export interface ReleaseNotice {
  key: string;
  /** Token of the holder that released (several masters announce the same release under Redlock). */
  releasedBy: string;
  /**
   * Set when a fair release granted the lock to this waiter's token. `attempt`: the waiter's
   * attempt that queued it, when the store knows it (then the grant happened after that attempt
   * ran); without it the waiter must ask again before it counts as holding.
   */
  grantedTo?: { token: string; fence: number; attempt?: number };
}

/** What a release to a successor did (see LockStore.releaseToSuccessor). */
export interface SuccessionOutcome {
  /** Whether the releasing token held the key. */
  released: boolean;
  /** The successor holds the key now, with this fence. */
  successorFence?: number;
  /** The key went to this queued waiter instead (someone else waited). */
  handedTo?: string;
}

/** How the caller of one acquire attempt will wait if the key is busy. */
export interface WaitIntent {
  /**
   * How long (ms) a busy key stays marked as wanted, so its release is announced; 0 when the
   * caller will not wait. The caller tries again within this time while it waits.
   */
  announceFor: number;
  /**
   * Fair mode (one key): queue the caller; `presenceTtl` is how long it counts as present without
   * trying again; `attempt` numbers this attempt within the caller's wait (a grant names the
   * attempt that queued the caller, and the lease is counted from when that attempt was sent).
   */
  fair?: { presenceTtl: number; attempt: number };
  /**
   * Default mode, one key (exclusive, or a permit), a caller that will wait: a busy attempt also
   * queues it (no FIFO: a free key or permit still goes to whoever asks first), so a release can
   * hand it over directly. Same fields as `fair`. Stores without handoff ignore it.
   */
  queue?: { presenceTtl: number; attempt: number };
  /** Counting semaphore: at most this many holders per key (instead of an exclusive lock). */
  permits?: number;
  /** Read-write lock: `'read'` shares the key with other readers and excludes the writer. */
  mode?: 'read';
}

/** What kind of hold a lease is, which decides how it is renewed and released. */
export interface LeaseShape {
  fair?: boolean;
  permits?: number;
  mode?: 'read';
}

/** Reachability of one server behind a store. */
export interface NodeHealth {
  /** e.g. "127.0.0.1:6379", "cluster", "memory" */
  node: string;
  up: boolean;
  /** Round-trip time of a PING, ms. */
  rttMs?: number;
  /** Why it is down. */
  error?: string;
}

/** Whether the store can take locks now: for Redlock, whether a quorum of masters answers. */
export interface StoreHealth {
  up: boolean;
  nodes: NodeHealth[];
  /** Redlock only: masters needed. */
  quorum?: number;
}

/** One lease to renew in a batch. */
export interface Renewal {
  keys: readonly string[];
  token: string;
  ttl: number;
  /** Semaphore leases renew their permit instead of an exclusive key. */
  permits?: number;
  /** Read leases renew their place among the readers. */
  mode?: 'read';
  /** Fencing token per key. Redlock writes an exclusive hold back, with these, on a master that lost it. */
  fences?: readonly number[];
  /** Whether the lease is still held, asked at the moment a store would write it back (see `fences`). */
  stillHeld?: () => boolean;
}

/**
 * The small contract a backend implements. Keys are the user's keys (without prefix): how they map
 * to storage (prefix, Cluster hash tags) is the store's business. Everything above it (waiting,
 * renewal, reentrancy, decorators) is written once for every store.
 */
export interface LockStore {
  /**
   * Takes every key for `token` with a `ttl` ms lease, or none of them. With `intent.fair` (one key
   * only), a busy answer also queues the caller, and a free key goes to whoever queued first.
   */
  acquire(keys: readonly string[], token: string, ttl: number, intent: WaitIntent): Promise<AcquireOutcome>;
  /** Renews several leases in one round trip: true renewed, false not ours any more, Error unknown. */
  extend(renewals: readonly Renewal[]): Promise<Array<boolean | Error>>;
  /**
   * Deletes the keys still owned by `token` (never another owner's) and announces each release.
   * A `fair` release hands the key straight to the first queued waiter.
   */
  release(keys: readonly string[], token: string, shape?: LeaseShape): Promise<number>;
  /**
   * Optional last step of every grant (taken by an attempt or handed over by a release), before
   * the lock counts as held: e.g. waiting until replicas have it. Rejects when the grant must not
   * count; the caller then gives the lock back. Returns undefined when there is nothing to confirm
   * (no `waitForReplicas`), so the common grant costs no promise and no turn of the event loop.
   */
  confirmGrant?(keys: readonly string[], token: string, shape: LeaseShape, ttl: number): Promise<void> | undefined;
  /** A fair waiter gives up: leaves the queue, passing the lock on if it was granted meanwhile. */
  leaveQueue(key: string, token: string, ttl: number, shape?: LeaseShape): Promise<void>;
  isLocked(key: string): Promise<boolean>;
  /**
   * Starts listening for releases (idempotent) and resolves once listening: after that, every
   * release by any process reaches `onRelease`.
   */
  listenForReleases(onRelease: (notice: ReleaseNotice) => void): Promise<void>;
  /**
   * Stores whose release scripts hand locks over: `onRelease` also hears the grants made by this
   * store's own releases, read from their replies, from now on (before any subscription exists,
   * so a grant that races a service's first wait is not lost).
   */
  hearOwnGrants?(onRelease: (notice: ReleaseNotice) => void): void;
  /**
   * Stores that can hand a lock to a waiter of the releasing process in the release itself (one
   * key, default mode): releases `key` if `token` holds it and, when no other instance waits for
   * it, gives it to `successor` (a token that has not asked for the key) for `successorTtl` ms with
   * a new fence. Otherwise behaves as `release`, handing the key to a queued waiter if there is one
   * (`handedTo`).
   */
  releaseToSuccessor?(key: string, token: string, successor: string, successorTtl: number): Promise<SuccessionOutcome>;
  /** Round trip to each server behind the store, for health checks. */
  ping(timeoutMs: number): Promise<StoreHealth>;
  /** Stops listening and closes the connections the store opened (never a client passed in). */
  close(): Promise<void>;
}
