/**
 * What inspection needs from where the locks live, implemented for one Redis (standalone,
 * Sentinel, Cluster), a Redlock quorum and the memory store. Internal: raw states carry owner
 * tokens, which {@link LockInspector} turns into instances and drops before anything leaves it.
 */

/** One hold as stored: the owner token, the lease left and (for sorted-set holds) its fence. */
export interface RawHold {
  token: string;
  remainingMs: number;
  fence?: number;
}

/** Everything stored about one user key. */
export interface RawLockState {
  exclusive?: RawHold;
  permits?: { limit?: number; holders: RawHold[] };
  readers?: RawHold[];
  fence: number;
  writerWaiting: boolean;
  wanted: boolean;
  queueLength: number;
}

/** Redlock: one master's state (or why it did not answer). */
export interface RawMasterState {
  node: string;
  state?: RawLockState;
  error?: string;
}

export interface RawView {
  /** For Redlock, what the quorum agrees on. */
  state: RawLockState;
  quorum?: number;
  masters?: RawMasterState[];
}

/** The record an instance keeps under `<prefix>instance:<id>` while it runs. */
export interface InstanceRecord {
  id: string;
  host: string;
  pid: number;
  app?: string;
  version: string;
  startedAt: number;
}

export interface InspectionBackend {
  inspect(key: string): Promise<RawView>;
  /** User keys that may be held (each at least once), matching the glob; found with SCAN. */
  candidateKeys(match: string | undefined): AsyncIterable<string>;
  readInstances(ids: readonly string[]): Promise<Map<string, InstanceRecord>>;
  writeInstance(record: InstanceRecord, ttl: number): Promise<void>;
  removeInstance(id: string): Promise<void>;
  /**
   * Removes every hold on the key, bumps its fence counter and announces the release with
   * `announceToken`. Returns the tokens removed and the fence counter after the bump.
   */
  forceRelease(key: string, announceToken: string): Promise<{ tokens: string[]; fence: number }>;
}

/** The key of an instance's record. It has no `{` after the prefix, so it is never a lock's key. */
export function instanceRecordKey(prefix: string, id: string): string {
  return `${prefix}instance:${id}`;
}

/** A record read back, or undefined when it is not one of ours. */
export function parseInstanceRecord(text: string | null | undefined): InstanceRecord | undefined {
  if (!text) return undefined;
  try {
    const record = JSON.parse(text) as InstanceRecord;
    return typeof record === 'object' && record !== null && typeof record.id === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}
