import { MAX_TIMER_DELAY_MS } from './clock.js';
import { LockConfigError } from './errors.js';
import type {
  AcquireOptions,
  ClusterConnectionOptions,
  LockModuleOptions,
  RedisConnection,
} from './interfaces/lock-options.interface.js';
import type { LockEventListener } from './interfaces/lock-event.interface.js';
import { MESSAGES } from './lock.messages.js';

export const DEFAULT_TTL = 30_000;
export const DEFAULT_WAIT = 10_000;
export const DEFAULT_PREFIX = 'lock:';
export const DEFAULT_POLL_INTERVAL = 1_000;
export const DEFAULT_REPLICA_TIMEOUT = 1_000;
export const DEFAULT_REDLOCK_HUNG_AFTER = 10_000;
/** Redlock needs a majority of independent masters; fewer than 3 tolerates no failure at all. */
export const MIN_REDLOCK_MASTERS = 3;

/** Where locks live: one Redis (standalone, Sentinel or Cluster), or a Redlock quorum. */
export type LockBackend =
  | { kind: 'redis'; connection: RedisConnection | ClusterConnectionOptions; waitForReplicas?: number; replicaTimeout: number }
  | { kind: 'redlock'; connections: RedisConnection[]; hungAfter: number }
  | { kind: 'memory' };

/** Module options after validation, with every default filled in. */
export interface ResolvedModuleOptions {
  backend: LockBackend;
  prefix: string;
  ttl: number;
  wait: number;
  autoExtend: boolean;
  maxHold: number | undefined;
  fair: boolean;
  pollInterval: number;
  onEvent: LockEventListener | undefined;
  openTelemetry: boolean;
  /** Shown as the holder's app by inspection (instance record). */
  appName?: string;
}

/** One call's settings: the module defaults overridden by what the call gave. */
export interface ResolvedCallOptions {
  ttl: number;
  wait: number;
  autoExtend: boolean;
  maxHold: number | undefined;
  fair: boolean;
  /** Counting semaphore size; undefined for an exclusive lock. */
  permits: number | undefined;
  /** `'read'` for a shared read lock; undefined for an exclusive (write) lock. */
  mode: 'read' | undefined;
  signal: AbortSignal | undefined;
}

const MODULE_OPTION_NAMES = [
  'redis',
  'redlock',
  'redlockHungAfter',
  'store',
  'prefix',
  'ttl',
  'wait',
  'autoExtend',
  'maxHold',
  'fair',
  'pollInterval',
  'waitForReplicas',
  'replicaTimeout',
  'onEvent',
  'openTelemetry',
  'appName',
] as const;

const CALL_OPTION_NAMES = ['ttl', 'wait', 'autoExtend', 'maxHold', 'fair', 'signal', 'permits', 'mode'] as const;

type ErrorFactory = (option: string, value: unknown, rule: string) => string;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Looks like an ioredis client (duck-typed: the user's ioredis copy may differ from ours). */
export function isRedisClient(value: unknown): value is { duplicate: () => unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { defineCommand?: unknown }).defineCommand === 'function' &&
    typeof (value as { duplicate?: unknown }).duplicate === 'function'
  );
}

/** Largest time accepted: Redis takes integer milliseconds, and JS integers are exact up to here. */
export const MAX_MS = Number.MAX_SAFE_INTEGER;

export function positiveMs(option: string, value: unknown, message: ErrorFactory): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_MS) {
    throw new LockConfigError(message(option, value, 'expected a finite number of milliseconds greater than 0 (at most 2^53 - 1)'));
  }
  // Redis takes whole milliseconds; rounding up never shortens what the user asked for.
  return Math.ceil(value);
}

function nonNegativeMs(option: string, value: unknown, message: ErrorFactory): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_MS) {
    throw new LockConfigError(message(option, value, 'expected a finite number of milliseconds, 0 or more (at most 2^53 - 1)'));
  }
  return Math.ceil(value);
}

function bool(option: string, value: unknown, message: ErrorFactory): boolean {
  if (typeof value !== 'boolean') throw new LockConfigError(message(option, value, 'expected true or false'));
  return value;
}

function rejectUnknown(options: Record<string, unknown>, known: readonly string[], message: (o: string, k: readonly string[]) => string): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw new LockConfigError(message(name, known));
  }
}


function validateRedisConnection(option: string, value: unknown): RedisConnection | ClusterConnectionOptions {
  if (typeof value === 'string') {
    if (!/^rediss?:\/\//i.test(value)) {
      throw new LockConfigError(MESSAGES.configOption(option, value, 'expected a URL like redis://host:6379 (or rediss:// for TLS)'));
    }
    return value;
  }
  if (isRedisClient(value) || isPlainObject(value)) return value as RedisConnection;
  throw new LockConfigError(
    MESSAGES.configOption(
      option,
      value,
      'expected a redis:// URL, ioredis options, { cluster: [nodes] }, or an ioredis Redis/Cluster client',
    ),
  );
}

function isClusterConnection(value: unknown): boolean {
  if (isRedisClient(value)) return (value as { isCluster?: boolean }).isCluster === true;
  return isPlainObject(value) && Array.isArray(value.cluster);
}

function resolveBackend(options: Record<string, unknown>, fair: boolean): LockBackend {
  const given = options as LockModuleOptions;
  if (options.redlock === undefined && options.redlockHungAfter !== undefined) {
    throw new LockConfigError(MESSAGES.configOnlyWithRedlock('redlockHungAfter'));
  }
  if (options.store === 'memory') {
    if (options.waitForReplicas !== undefined) throw new LockConfigError(MESSAGES.configNotWithStore('waitForReplicas'));
    return { kind: 'memory' };
  }
  if (options.redlock !== undefined) {
    const masters = options.redlock;
    if (!Array.isArray(masters) || masters.length < MIN_REDLOCK_MASTERS) {
      throw new LockConfigError(
        MESSAGES.configOption('redlock', masters, `expected an array of ${MIN_REDLOCK_MASTERS} or more independent Redis masters`),
      );
    }
    masters.forEach((master, i) => {
      if (isClusterConnection(master)) {
        throw new LockConfigError(MESSAGES.configOption(`redlock[${i}]`, master, 'each Redlock master must be a single Redis, not a Cluster'));
      }
      validateRedisConnection(`redlock[${i}]`, master);
    });
    if (fair) throw new LockConfigError(MESSAGES.configNotWithRedlock('fair'));
    if (options.waitForReplicas !== undefined) throw new LockConfigError(MESSAGES.configNotWithRedlock('waitForReplicas'));
    const hungAfter =
      given.redlockHungAfter === undefined ? DEFAULT_REDLOCK_HUNG_AFTER : positiveMs('redlockHungAfter', given.redlockHungAfter, MESSAGES.configOption);
    return { kind: 'redlock', connections: masters as RedisConnection[], hungAfter };
  }
  const connection = validateRedisConnection('redis', options.redis);
  let waitForReplicas: number | undefined;
  if (given.waitForReplicas !== undefined) {
    const replicas = given.waitForReplicas;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw new LockConfigError(MESSAGES.configOption('waitForReplicas', replicas, 'expected a whole number of replicas, 0 or more'));
    }
    if (isClusterConnection(connection) && replicas > 0) {
      throw new LockConfigError(MESSAGES.configOption('waitForReplicas', replicas, 'it is not supported on a Redis Cluster yet'));
    }
    waitForReplicas = replicas;
  }
  const replicaTimeout =
    given.replicaTimeout === undefined ? DEFAULT_REPLICA_TIMEOUT : positiveMs('replicaTimeout', given.replicaTimeout, MESSAGES.configOption);
  return { kind: 'redis', connection, waitForReplicas, replicaTimeout };
}

function validateListener(listener: unknown): LockEventListener | undefined {
  if (listener === undefined) return undefined;
  if (typeof listener !== 'function') {
    throw new LockConfigError(MESSAGES.configOption('onEvent', listener, 'expected a function (event) => void'));
  }
  return listener as LockEventListener;
}

/**
 * `isGlobal` of `forRoot` / `forRootAsync`. Nest reads it while building the module definition,
 * before any provider runs, so it is checked there: anything but a boolean (or absent) is a
 * LockConfigError rather than a truthy value silently making the module global.
 */
export function resolveIsGlobal(value: unknown): boolean {
  return value === undefined ? false : bool('isGlobal', value, MESSAGES.configOption);
}

/** Validates LockModule options at bootstrap; every failure is a LockConfigError naming option and value. */
export function resolveModuleOptions(options: unknown): ResolvedModuleOptions {
  if (!isPlainObject(options)) {
    throw new LockConfigError(MESSAGES.configOption('options', options, 'LockModule.forRoot expects an options object'));
  }
  if ('isGlobal' in options) throw new LockConfigError(MESSAGES.configIsGlobalInFactory);
  rejectUnknown(options, MODULE_OPTION_NAMES, MESSAGES.configUnknownOption);

  const backends = (['redis', 'redlock', 'store'] as const).filter((name) => options[name] !== undefined);
  if (backends.length !== 1) throw new LockConfigError(MESSAGES.configBackends(backends));
  if (options.store !== undefined && options.store !== 'memory') {
    throw new LockConfigError(MESSAGES.configOption('store', options.store, "the only store is 'memory'"));
  }

  const prefix = options.prefix === undefined ? DEFAULT_PREFIX : options.prefix;
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new LockConfigError(
      MESSAGES.configOption('prefix', prefix, 'expected a non-empty string, so lock keys never collide with your other keys'),
    );
  }
  const defaults: LockModuleOptions = options;
  if (defaults.appName !== undefined && (typeof defaults.appName !== 'string' || defaults.appName.length === 0 || defaults.appName.length > 200)) {
    throw new LockConfigError(MESSAGES.configOption('appName', defaults.appName, 'expected a non-empty string of at most 200 characters'));
  }
  const fair = defaults.fair === undefined ? false : bool('fair', defaults.fair, MESSAGES.configOption);
  return {
    backend: resolveBackend(options, fair),
    prefix,
    ttl: defaults.ttl === undefined ? DEFAULT_TTL : positiveMs('ttl', defaults.ttl, MESSAGES.configOption),
    wait: defaults.wait === undefined ? DEFAULT_WAIT : nonNegativeMs('wait', defaults.wait, MESSAGES.configOption),
    autoExtend: defaults.autoExtend === undefined ? true : bool('autoExtend', defaults.autoExtend, MESSAGES.configOption),
    maxHold: defaults.maxHold === undefined ? undefined : positiveMs('maxHold', defaults.maxHold, MESSAGES.configOption),
    fair,
    onEvent: validateListener(defaults.onEvent),
    openTelemetry:
      defaults.openTelemetry === undefined ? true : bool('openTelemetry', defaults.openTelemetry, MESSAGES.configOption),
    pollInterval:
      defaults.pollInterval === undefined
        ? DEFAULT_POLL_INTERVAL
        : Math.min(positiveMs('pollInterval', defaults.pollInterval, MESSAGES.configOption), MAX_TIMER_DELAY_MS),
    ...(defaults.appName === undefined ? {} : { appName: defaults.appName }),
  };
}

/** Validates one call's options and merges them over the module defaults. */
export function resolveCallOptions(options: AcquireOptions | undefined, defaults: ResolvedModuleOptions): ResolvedCallOptions {
  if (options === undefined) {
    const { ttl, wait, autoExtend, maxHold, fair } = defaults;
    return { ttl, wait, autoExtend, maxHold, fair, permits: undefined, mode: undefined, signal: undefined };
  }
  if (!isPlainObject(options)) {
    throw new LockConfigError(MESSAGES.configCallOption('options', options, 'expected an options object'));
  }
  const given = options as Record<string, unknown>;
  rejectUnknown(given, CALL_OPTION_NAMES, MESSAGES.configUnknownCallOption);
  if (options.permits !== undefined) {
    const permits = options.permits;
    if (typeof permits !== 'number' || !Number.isInteger(permits) || permits < 1) {
      throw new LockConfigError(MESSAGES.configCallOption('permits', permits, 'expected a whole number of permits, 1 or more'));
    }
    if (options.fair === true) throw new LockConfigError(MESSAGES.configCallOption('fair', true, 'fair mode is for exclusive locks, not with "permits"'));
  }
  if (options.mode !== undefined && options.mode !== 'exclusive') {
    if (options.mode !== 'read') {
      throw new LockConfigError(MESSAGES.configCallOption('mode', options.mode, "expected 'exclusive' or 'read'"));
    }
    if (options.permits !== undefined) {
      throw new LockConfigError(MESSAGES.configCallOption('mode', 'read', 'a read lock cannot also be a semaphore; drop "permits"'));
    }
    if (options.fair === true) throw new LockConfigError(MESSAGES.configCallOption('fair', true, "fair mode is for exclusive locks, not with mode: 'read'"));
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new LockConfigError(MESSAGES.configCallOption('signal', options.signal, 'expected an AbortSignal'));
  }
  return {
    ttl: options.ttl === undefined ? defaults.ttl : positiveMs('ttl', options.ttl, MESSAGES.configCallOption),
    wait: options.wait === undefined ? defaults.wait : nonNegativeMs('wait', options.wait, MESSAGES.configCallOption),
    autoExtend:
      options.autoExtend === undefined ? defaults.autoExtend : bool('autoExtend', options.autoExtend, MESSAGES.configCallOption),
    maxHold: options.maxHold === undefined ? defaults.maxHold : positiveMs('maxHold', options.maxHold, MESSAGES.configCallOption),
    // Semaphores and readers are never fair, even when the module makes exclusive locks fair by default.
    fair:
      options.permits !== undefined || options.mode === 'read'
        ? false
        : options.fair === undefined
          ? defaults.fair
          : bool('fair', options.fair, MESSAGES.configCallOption),
    permits: options.permits as number | undefined,
    mode: options.mode === 'read' ? 'read' : undefined,
    signal: options.signal as AbortSignal | undefined,
  };
}
