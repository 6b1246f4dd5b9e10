/** The answer to one acquire attempt over one or more keys. */
export type AcquireOutcome =
  | { acquired: true; /** fencing token per key, in the order asked */ fences: number[] }
  | { acquired: false; /** the first key found held */ busyKey: string; /** its remaining lease in ms, or -1 if unknown */ busyForMs: number };

/** One lease to renew in a batch. */
export interface Renewal {
  keys: readonly string[];
  token: string;
  ttl: number;
}

/**
 * The small contract a backend implements. Keys are the user's keys (without prefix): how they map
 * to storage (prefix, Cluster hash tags) is the store's business. Everything above it (waiting,
 * renewal, reentrancy, decorators) is written once for every store.
 */
export interface LockStore {
  /** Takes every key for `token` with a `ttl` ms lease, or none of them. */
  acquire(keys: readonly string[], token: string, ttl: number): Promise<AcquireOutcome>;
  /** Renews several leases in one round trip: true renewed, false not ours any more, Error unknown. */
  extend(renewals: readonly Renewal[]): Promise<Array<boolean | Error>>;
  /** Deletes the keys still owned by `token` (never another owner's) and announces each release. */
  release(keys: readonly string[], token: string): Promise<number>;
  isLocked(key: string): Promise<boolean>;
  /**
   * Starts listening for releases (idempotent) and resolves once listening: after that, every
   * release by any process reaches `onRelease` with the released key.
   */
  listenForReleases(onRelease: (key: string) => void): Promise<void>;
  /** Stops listening and closes the connections the store opened (never a client passed in). */
  close(): Promise<void>;
}
