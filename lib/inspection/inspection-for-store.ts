import type { LockStore } from '../stores/lock-store.js';
import { MemoryLockStore } from '../stores/memory.store.js';
import { RedisLockStore } from '../stores/redis.store.js';
import { RedlockStore } from '../stores/redlock.store.js';
import type { InspectionBackend } from './inspection-backend.js';
import { MemoryInspection } from './memory-inspection.js';
import { RedisInspection } from './redis-inspection.js';
import { RedlockInspection } from './redlock-inspection.js';

/** Inspection over the same connections as the store; undefined for a store it does not know. */
export function inspectionFor(store: LockStore, prefix: string): InspectionBackend | undefined {
  if (store instanceof RedisLockStore) return new RedisInspection(store.inspectionTarget.client, prefix);
  if (store instanceof RedlockStore) {
    return new RedlockInspection(store.masterStores.map((master) => new RedisInspection(master.inspectionTarget.client, prefix)));
  }
  if (store instanceof MemoryLockStore) return new MemoryInspection(store.keyspace);
  return undefined;
}
