/**
 * What `LockService.inspect(key)` and `LockService.list()` report, and the CLI prints. Owner tokens
 * are never part of it: a holder is named by its instance.
 */

/** A running LockService (one per app), as it registered itself under the prefix. */
export interface LockInstanceInfo {
  /** 16 hex characters, also the first part of every owner token this instance hands out. */
  id: string;
  /** `os.hostname()` of the instance; absent when its record is gone. */
  host?: string;
  pid?: number;
  /** The module's `appName` option, when set. */
  app?: string;
  /** nestjs-redis-lock version of the instance. */
  version?: string;
  /** When the instance started (epoch ms). */
  startedAt?: number;
  /**
   * Its record is there: the instance renewed it within the last `ttl` (module option). `false`
   * means it stopped or crashed, or cannot reach the store: its locks run out with their lease.
   */
  alive: boolean;
}

/** One holder of a key: the exclusive owner, a permit holder or a reader. */
export interface LockHolderInfo {
  /** Absent only for a hold taken by a version of the library without instance ids. */
  instance?: LockInstanceInfo;
  /**
   * When the holder's acquire began (epoch ms, its clock): the hold started at or after this (a
   * caller that waited for the lock got it later). Absent when unknown.
   */
  since?: number;
  /** Lease left, ms (renewed while the holder is alive). */
  remainingMs: number;
  /** The fence handed to this holder, where the store keeps it (permits, readers). */
  fence?: number;
}

/** Under Redlock: what one master says. */
export interface LockMasterInfo {
  node: string;
  /** false when it did not answer (then `error`). */
  up: boolean;
  /** It holds the key for the quorum's holder. */
  held: boolean;
  remainingMs?: number;
  fence?: number;
  error?: string;
}

export interface LockInfo {
  key: string;
  /** Someone holds the key (under Redlock: a quorum of masters agrees on one holder). */
  held: boolean;
  /** How it is held; absent when it is not. */
  mode?: 'exclusive' | 'permits' | 'read';
  /** Every holder: one for an exclusive lock, each permit holder, each reader. */
  holders: LockHolderInfo[];
  /** The key's fence counter: the fence most recently handed out (0 if never). */
  fence: number;
  /** Semaphore: the number of permits its holders agreed on. */
  permits?: number;
  /** A writer waits for the readers (or permit holders) to leave; new ones queue behind it. */
  writerWaiting?: boolean;
  /** Waiters queued for the key (still present): fair ones, default-mode waiters for one exclusive key, and permit waiters. */
  queueLength: number;
  /** Someone waits for the key (its release will be announced). */
  waiting: boolean;
  /** Redlock: the quorum needed, and each master's view. */
  quorum?: number;
  masters?: LockMasterInfo[];
}

/** Options of `LockService.list()`. */
export interface LockListOptions {
  /** Redis glob over the keys (without prefix), e.g. `'order:*'`. Default: every key. */
  match?: string;
  /** At most this many held keys. Default 1 000. */
  limit?: number;
}

/** Outcome of a forced release (`nestjs-redis-lock release KEY --force`). */
export interface ForcedRelease {
  key: string;
  /** Holds removed (exclusive, permits, readers). */
  released: number;
  /** Instances that held them. */
  holders: Array<LockInstanceInfo | undefined>;
  /** The fence counter after the bump: any write fenced below this is the old holder's. */
  fence: number;
}
