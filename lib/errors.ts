import { ConflictException } from '@nestjs/common';

/** Base class of every error this package throws, except {@link LockNotAcquiredError}. */
export class LockError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The lock stayed busy for the whole `wait`. Extends Nest's `ConflictException`, so an HTTP caller
 * receives `409 Conflict` with a JSON body naming the keys, without any filter to install.
 */
export class LockNotAcquiredError extends ConflictException {
  /** How long the caller waited, in milliseconds. */
  readonly waitedMs: number;
  /** The keys that were asked for (without prefix). */
  readonly keys: readonly string[];

  /**
   * When the lock may be free again: the busy holder's remaining lease in ms, as last seen (it may
   * be renewed). Undefined when not known. HTTP responses carry it as a `Retry-After` header.
   */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, keys: readonly string[], waitedMs: number, retryAfterMs?: number) {
    super({ statusCode: 409, error: 'Conflict', message, keys: [...keys] });
    this.name = 'LockNotAcquiredError';
    this.keys = Object.freeze([...keys]);
    this.waitedMs = waitedMs;
    this.retryAfterMs = retryAfterMs !== undefined && retryAfterMs >= 0 ? retryAfterMs : undefined;
  }
}

/** A lock is no longer held: `extend()` on it, or the reason its `signal` aborted with. */
export class LockLostError extends LockError {
  constructor(
    message: string,
    /** The keys of the lost lock (without prefix). */
    readonly keys: readonly string[],
  ) {
    super(message);
  }
}

/** A key or key template that cannot be used (empty, unresolvable placeholder, bad value). */
export class LockKeyError extends LockError {}

/** The store could not be reached in time (Redis down, no quorum). `cause` holds the underlying error. */
export class LockUnavailableError extends LockError {}

/** Invalid module or call options. */
export class LockConfigError extends LockError {}

/**
 * Internal: the reply granting a lock came back after the lease it granted had already run out
 * (Redis or the network was slower than `ttl`). Surfaces as the `cause` of a LockUnavailableError.
 */
export class LeaseRanOutError extends Error {
  constructor(
    readonly ttl: number,
    readonly tookMs: number,
  ) {
    super(`the reply granting the lock came ${tookMs} ms after the attempt was sent, past its ${ttl} ms lease`);
    this.name = 'LeaseRanOutError';
  }
}

/**
 * Internal (not exported from the package): Redis granted the lock, but fewer than
 * `waitForReplicas` replicas acknowledged it within `replicaTimeout`, so it was given back. The
 * service reports it as a LockUnavailableError that says so, not as an unreachable Redis.
 */
export class ReplicaShortfallError extends Error {
  constructor(
    readonly acknowledged: number,
    readonly wanted: number,
    readonly timeoutMs: number,
  ) {
    super(`only ${acknowledged} of ${wanted} replicas acknowledged the lock within ${timeoutMs} ms (waitForReplicas)`);
    this.name = 'ReplicaShortfallError';
  }
}
