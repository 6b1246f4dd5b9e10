import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { LockEventListener } from './lock-event.interface.js';

/** One Redis: a URL, ioredis options, or an ioredis client you own (we never close yours). */
export type RedisConnection = string | RedisOptions | Redis | Cluster;

/** A Redis Cluster the module connects to itself (it closes it on shutdown). */
export interface ClusterConnectionOptions {
  /** Startup nodes, e.g. `[{ host: '10.0.0.1', port: 7000 }]`. */
  cluster: ClusterNode[];
  clusterOptions?: ClusterOptions;
}

/** Options shared by the module (defaults) and each call. All times are milliseconds. */
export interface LockTimingOptions {
  /** Lease length. While held with `autoExtend`, the lease is renewed before it runs out. Default 30 000. */
  ttl?: number;
  /** How long to wait for a busy lock before failing; `0` tries once. Default 10 000. */
  wait?: number;
  /** Renew the lease in the background while held. Default `true`. */
  autoExtend?: boolean;
  /**
   * Longest time renewal keeps a lock. When reached, renewal stops and `lock.signal` aborts with a
   * `LockLostError`; the key then expires after at most `ttl`. Guards against a hung holder. Default: none.
   */
  maxHold?: number;
  /** Serve waiters of a key in arrival order across processes, handing the lock over directly. One key per call; exclusive locks only. Default `false`. */
  fair?: boolean;
}

/** Per-call options of `acquire`, `tryAcquire` and `withLock`. */
export interface AcquireOptions extends LockTimingOptions {
  /** Cancels the wait (not a lock already held): the call rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Counting semaphore: at most this many holders of the key at once; all holders of a key must agree. */
  permits?: number;
  /** `'read'`: shared with other readers, excluded by a writer; `'exclusive'` (default): the writer. */
  mode?: 'read' | 'exclusive';
}

export interface LockModuleOptions extends LockTimingOptions {
  /**
   * One Redis: a URL, ioredis options (Sentinel: `{ sentinels, name }`), `{ cluster: nodes }`, or
   * an ioredis `Redis` / `Cluster` you own.
   */
  redis?: RedisConnection | ClusterConnectionOptions;
  /** Instead of `redis`: a quorum over 3+ independent masters (each in any form `redis` takes, except Cluster). */
  redlock?: RedisConnection[];
  /**
   * Redlock only: a master that has left calls unanswered for this long while the others answered
   * is taken for hung (a stopped process, packets dropped without the connection closing) and
   * skipped until it answers again; releases still wait for it. Default 10 000. Below 5 000, a
   * master merely slow under load may be skipped while its answer could still have counted.
   */
  redlockHungAfter?: number;
  /**
   * After acquiring, wait until this many replicas have the lock (Redis WAIT) before returning, so
   * a failover right after cannot lose it. If they do not confirm within `replicaTimeout`, the lock
   * is given back and the attempt counts as failed. Single Redis / Sentinel only. Default 0.
   */
  waitForReplicas?: number;
  /** Bound on the `waitForReplicas` confirmation. Default 1 000. */
  replicaTimeout?: number;
  /**
   * Called for every lock event (acquired, released, extended, lost, busy), e.g. for metrics.
   * Nothing is computed for events when it is not set.
   */
  onEvent?: LockEventListener;
  /**
   * Spans and metrics through `@opentelemetry/api`, when that package is installed (it is an
   * optional peer). Set `false` to turn them off. Default `true`.
   */
  openTelemetry?: boolean;
  /**
   * Register the module globally. Give it to `forRoot({...})` or `forRootAsync({...})` itself; an
   * options factory cannot change it any more (returning it from one is a LockConfigError).
   */
  isGlobal?: boolean;
  /**
   * `'memory'`: an in-process store with the same semantics as Redis, for unit tests and
   * single-process development. Apps in one process share it; separate processes do not.
   */
  store?: 'memory';
  /** Prepended to every key and channel in Redis. Default `'lock:'`. */
  prefix?: string;
  /**
   * Names this app in the instance record that `inspect`, `list` and the CLI show for the locks it
   * holds (beside host and pid), e.g. `'billing-api'`. Default: none.
   */
  appName?: string;
  /**
   * Safety-net poll while waiting, for release messages that were missed (subscriber reconnecting)
   * and leases that expired without a release. Waiters are normally woken by the release itself.
   * Default 1 000.
   */
  pollInterval?: number;
}

/** Implement this on a class given to `forRootAsync({ useClass })` / `useExisting`. */
export interface LockOptionsFactory {
  createLockOptions(): LockModuleOptions | Promise<LockModuleOptions>;
}
