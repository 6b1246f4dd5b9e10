import { monotonicNow } from '../clock.js';
import type { MemoryKeyspace } from '../stores/memory.store.js';
import { globMatcher } from './key-layout.js';
import type { InspectionBackend, InstanceRecord, RawHold, RawLockState, RawView } from './inspection-backend.js';

/** Instance records of each memory keyspace (what `<prefix>instance:<id>` keys are in Redis). */
const recordsOf = new WeakMap<MemoryKeyspace, Map<string, { record: InstanceRecord; expiresAt: number }>>();

/** Inspection of the memory store: the same report as for Redis, read from the keyspace. */
export class MemoryInspection implements InspectionBackend {
  private readonly records: Map<string, { record: InstanceRecord; expiresAt: number }>;

  constructor(private readonly space: MemoryKeyspace) {
    let records = recordsOf.get(space);
    if (!records) recordsOf.set(space, (records = new Map()));
    this.records = records;
  }

  async inspect(key: string): Promise<RawView> {
    await Promise.resolve();
    const now = monotonicNow();
    const space = this.space;
    const holdsOf = (holders: Map<string, number>): RawHold[] =>
      [...holders].map(([token, expiresAt]) => ({ token, remainingMs: Math.ceil(expiresAt - now) }));
    const state: RawLockState = {
      // The memory store keeps a fence with exclusive holds only (one counter for the keyspace).
      fence: space.holder(key, now)?.fence ?? 0,
      writerWaiting: (space.writerWaiting.get(key) ?? 0) > now,
      // The memory store announces every release, so it keeps no "wanted" marker.
      wanted: false,
      queueLength: space.queue(key, now).length,
    };
    const holder = space.holder(key, now);
    if (holder) state.exclusive = { token: holder.token, remainingMs: Math.ceil(holder.expiresAt - now), fence: holder.fence };
    const semaphore = space.semaphore(key, now);
    if (semaphore) state.permits = { limit: semaphore.limit, holders: holdsOf(semaphore.holders) };
    const readers = space.liveReaders(key, now);
    if (readers) state.readers = holdsOf(readers);
    return { state };
  }

  async *candidateKeys(match: string | undefined): AsyncIterable<string> {
    const matches = globMatcher(match);
    const keys = new Set([...this.space.locks.keys(), ...this.space.semaphores.keys(), ...this.space.readers.keys()]);
    for (const key of keys) if (matches(key)) yield key;
  }

  async readInstances(ids: readonly string[]): Promise<Map<string, InstanceRecord>> {
    const now = monotonicNow();
    const found = new Map<string, InstanceRecord>();
    for (const id of ids) {
      const entry = this.records.get(id);
      if (entry && entry.expiresAt > now) found.set(id, entry.record);
    }
    return found;
  }

  async writeInstance(record: InstanceRecord, ttl: number): Promise<void> {
    this.records.set(record.id, { record, expiresAt: monotonicNow() + ttl });
  }

  async removeInstance(id: string): Promise<void> {
    this.records.delete(id);
  }

  async forceRelease(key: string, announceToken: string): Promise<{ tokens: string[]; fence: number }> {
    await Promise.resolve();
    const space = this.space;
    const tokens: string[] = [];
    const holder = space.locks.get(key);
    if (holder) tokens.push(holder.token);
    tokens.push(...(space.semaphores.get(key)?.holders.keys() ?? []), ...(space.readers.get(key)?.keys() ?? []));
    space.locks.delete(key);
    space.semaphores.delete(key);
    space.readers.delete(key);
    const fence = space.nextFence();
    space.announce({ key, releasedBy: announceToken });
    return { tokens, fence };
  }
}
