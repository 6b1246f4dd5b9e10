import { hostname } from 'node:os';
import type { InspectionBackend, InstanceRecord } from '../inspection/inspection-backend.js';
import { LIBRARY_VERSION } from '../version.js';
import { withTimeout } from '../with-timeout.js';
import { HolderTokens, newInstanceId } from './holder-token.js';

/** Shortest life of an instance record, however short the module's ttl. */
const MIN_RECORD_TTL_MS = 1_000;
/** Bound on one write of the record: a Redis that does not answer must not pile them up. */
const WRITE_TIMEOUT_MS = 2_000;

/**
 * This LockService as a holder: its id (carried by every owner token it hands out, so a lock
 * points to its holder without an extra write per acquire) and a small record
 * (`<prefix>instance:<id>`: host, pid, app, version, start) that lives for the module's `ttl` and
 * is rewritten every third of it by one unref'd timer, so it vanishes on its own when the process
 * dies, about when its locks do. Removed on shutdown. Failures are silent: the record is for
 * operators, locking never depends on it.
 */
export class InstanceRegistry {
  readonly id = newInstanceId();
  readonly tokens = new HolderTokens(this.id);
  readonly record: InstanceRecord;
  private readonly ttl: number;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly backend: Pick<InspectionBackend, 'writeInstance' | 'removeInstance'> | undefined,
    ttl: number,
    app: string | undefined,
  ) {
    this.ttl = Math.max(Math.ceil(ttl), MIN_RECORD_TTL_MS);
    this.record = {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      ...(app === undefined ? {} : { app }),
      version: LIBRARY_VERSION,
      startedAt: Date.now(),
    };
  }

  /** Writes the record now and keeps it alive until `stop()`. */
  start(): void {
    if (!this.backend || this.timer || this.stopped) return;
    this.write();
    this.timer = setInterval(() => this.write(), Math.floor(this.ttl / 3));
    this.timer.unref();
  }

  /** Stops renewing and removes the record (bounded; it expires anyway). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    if (!this.backend) return;
    await this.writing; // so a write still in flight cannot bring the record back after its removal
    await withTimeout(this.backend.removeInstance(this.id), WRITE_TIMEOUT_MS).catch(() => undefined);
  }

  private write(): void {
    if (this.writing || this.stopped || !this.backend) return;
    this.writing = withTimeout(this.backend.writeInstance(this.record, this.ttl), WRITE_TIMEOUT_MS)
      .catch(() => undefined)
      .finally(() => {
        this.writing = undefined;
      });
  }
}
