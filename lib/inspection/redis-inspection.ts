import type { Cluster, Redis } from 'ioredis';
import { clusterSlot, SlotCounters } from '../stores/cluster-slot.js';
import { holdsOf, lockKeyOf, permitQueueKeysOf, siblingKey } from '../stores/redis.store.js';
import { globMatcher, heldUserKeyOf, scanPattern } from './key-layout.js';
import {
  instanceRecordKey,
  parseInstanceRecord,
  type InspectionBackend,
  type InstanceRecord,
  type RawHold,
  type RawLockState,
  type RawView,
} from './inspection-backend.js';

type Client = Redis | Cluster;

/**
 * Keys read (and, for a forced release, written) per user key; all in the key's Cluster slot:
 * the lock, the key's legacy per-key fence counter (versions before 0.2), ..., the shared fence
 * counter its fences come from (see the store's fenceCounterOf), and the permit waiters' presence.
 */
function keysOf(prefix: string, key: string, counterOf: (lockKey: string) => string): string[] {
  // The store's own names for them (one spelling), so inspection can never read a key the store does not write.
  const lock = lockKeyOf(prefix, key);
  const permits = siblingKey(lock, 'permits');
  const readers = siblingKey(lock, 'readers');
  return [
    lock,
    siblingKey(lock, 'fence'),
    permits,
    holdsOf(permits),
    readers,
    holdsOf(readers),
    siblingKey(lock, 'writer-waiting'),
    siblingKey(lock, 'wanted'),
    siblingKey(lock, 'waiting'),
    counterOf(lock),
    permitQueueKeysOf(permits)[1],
  ];
}

/**
 * Read-only snapshot of one key, atomic, in one round trip. KEYS as in keysOf. Returns
 * {now, holder value ('<token>:<fence>[:w]') or '', pttl, legacy per-key fence counter or '', permits [token, expiry...], permit holds [field, value...],
 * readers, reader holds, writer-waiting pttl, wanted pttl, live queued waiters (for the lock and for a permit)}.
 */
const INSPECT_SCRIPT = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local live = '(' .. now
return {
  now,
  redis.call('GET', KEYS[1]) or '',
  redis.call('PTTL', KEYS[1]),
  redis.call('GET', KEYS[2]) or '',
  redis.call('ZRANGEBYSCORE', KEYS[3], live, '+inf', 'WITHSCORES'),
  redis.call('HGETALL', KEYS[4]),
  redis.call('ZRANGEBYSCORE', KEYS[5], live, '+inf', 'WITHSCORES'),
  redis.call('HGETALL', KEYS[6]),
  redis.call('PTTL', KEYS[7]),
  redis.call('PTTL', KEYS[8]),
  redis.call('ZCOUNT', KEYS[9], live, '+inf') + redis.call('ZCOUNT', KEYS[11], live, '+inf')
}
`;

/**
 * Forced release (operator's tool). KEYS as in keysOf; ARGV[1] release channel, ARGV[2] user key,
 * ARGV[3] token to announce the release with. Deletes the exclusive hold and every permit and
 * reader (with their holds hashes), bumps the fence counter (a write fenced with the old holder's
 * fence is now below it) and announces the release, so waiters try at once. The old holders'
 * next renewal finds their token gone and their signal aborts. Returns {fence, token...}.
 */
const FORCE_RELEASE_SCRIPT = `
local reply = {0}
local holder = redis.call('GET', KEYS[1])
if holder then
  table.insert(reply, string.match(holder, '^[^:]+'))
  redis.call('DEL', KEYS[1])
end
for _, set in ipairs({3, 5}) do
  for _, member in ipairs(redis.call('ZRANGE', KEYS[set], 0, -1)) do
    table.insert(reply, member)
  end
  redis.call('DEL', KEYS[set], KEYS[set + 1])
end
-- The next fence, as the acquire scripts take it: above the shared counter and above the key's
-- legacy counter (written back while it exists), so the old holder's writes are fenced out.
local fence = redis.call('INCR', KEYS[10])
local legacy = redis.call('GET', KEYS[2])
if legacy then
  if tonumber(legacy) >= fence then
    fence = tonumber(legacy) + 1
    redis.call('SET', KEYS[10], fence)
  end
  redis.call('SET', KEYS[2], fence)
end
reply[1] = fence
redis.call('PUBLISH', ARGV[1], 'r' .. ARGV[3] .. ARGV[2])
return reply
`;

interface InspectionCommands {
  nestjsRedisLockInspect(numKeys: number, ...args: string[]): Promise<unknown[]>;
  nestjsRedisLockForceRelease(numKeys: number, ...args: string[]): Promise<Array<number | string>>;
}

/** SCAN batch size: one call walks about this many keys, without blocking Redis. */
const SCAN_COUNT = 1_000;

/** Inspection of one Redis (standalone, Sentinel or Cluster) through an ioredis client. */
export class RedisInspection implements InspectionBackend {
  private readonly client: Client & InspectionCommands;
  private readonly slotCounters: SlotCounters;

  constructor(
    client: Client,
    private readonly prefix: string,
  ) {
    this.client = client as Client & InspectionCommands;
    this.slotCounters = new SlotCounters(prefix);
    // Idempotent, and harmless on a client shared with the store or the user.
    client.defineCommand('nestjsRedisLockInspect', { lua: INSPECT_SCRIPT });
    client.defineCommand('nestjsRedisLockForceRelease', { lua: FORCE_RELEASE_SCRIPT });
  }

  /** host:port of the connection, for reports (Redlock masters). */
  get node(): string {
    if (this.client.isCluster) return 'cluster';
    const options = (this.client as Redis).options;
    if (options.sentinels) return `sentinel:${options.name ?? ''}`;
    return `${options.host ?? 'localhost'}:${options.port ?? 6379}`;
  }

  async inspect(key: string): Promise<RawView> {
    return { state: await this.readState(key) };
  }

  /** The shared fence counter of a lock key: one per prefix, or on a Cluster one per slot (as the store names it). */
  private counterOf = (lockKey: string): string => {
    if (!this.client.isCluster) return `${this.prefix}fences`;
    return this.slotCounters.nameFor(clusterSlot(lockKey)) ?? `${lockKey}:fence`;
  };

  async readState(key: string): Promise<RawLockState> {
    const keys = keysOf(this.prefix, key, this.counterOf);
    const reply = await this.client.nestjsRedisLockInspect(keys.length, ...keys);
    const [now, holder, pttl, fence, permits, permitHolds, readers, readerHolds, writerWaiting, wanted, queued] = reply as [
      number,
      string,
      number,
      string,
      string[],
      string[],
      string[],
      string[],
      number,
      number,
      number,
    ];
    const state: RawLockState = {
      // The key's latest fence: its holds' fences (below), or what a legacy counter says.
      fence: fence === '' ? 0 : Number(fence),
      writerWaiting: writerWaiting !== -2,
      wanted: wanted !== -2,
      queueLength: Number(queued),
    };
    if (holder !== '') {
      // '<token>:<fence>', with ':w' when someone waits (see redis-scripts.ts).
      const [token, holderFence] = holder.split(':');
      state.exclusive = { token, remainingMs: Number(pttl), ...(holderFence ? { fence: Number(holderFence) } : {}) };
    }
    const permitFences = pairs(permitHolds);
    if (permits.length > 0) {
      const limit = permitFences.get('limit');
      state.permits = { limit: limit === undefined ? undefined : Number(limit), holders: holds(permits, permitFences, Number(now)) };
    }
    if (readers.length > 0) state.readers = holds(readers, pairs(readerHolds), Number(now));
    const held = [state.exclusive, ...(state.permits?.holders ?? []), ...(state.readers ?? [])];
    for (const hold of held) if (hold?.fence !== undefined && hold.fence > state.fence) state.fence = hold.fence;
    return state;
  }

  async *candidateKeys(match: string | undefined): AsyncIterable<string> {
    const pattern = scanPattern(this.prefix, match);
    const matches = globMatcher(match);
    // A Cluster client knows its masters once connected: one keyed command waits for that.
    if (this.client.isCluster) await this.client.exists(`${this.prefix}instance:`);
    const nodes: Redis[] = this.client.isCluster ? (this.client as Cluster).nodes('master') : [this.client as Redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
        cursor = next;
        for (const redisKey of keys) {
          const held = heldUserKeyOf(this.prefix, redisKey);
          if (held && matches(held.key)) yield held.key;
        }
      } while (cursor !== '0');
    }
  }

  async readInstances(ids: readonly string[]): Promise<Map<string, InstanceRecord>> {
    // One GET each, in parallel: on a Cluster the records live in different slots.
    const texts = await Promise.all(ids.map((id) => this.client.get(instanceRecordKey(this.prefix, id))));
    const records = new Map<string, InstanceRecord>();
    ids.forEach((id, i) => {
      const record = parseInstanceRecord(texts[i]);
      if (record?.id === id) records.set(id, record);
    });
    return records;
  }

  async writeInstance(record: InstanceRecord, ttl: number): Promise<void> {
    await this.client.set(instanceRecordKey(this.prefix, record.id), JSON.stringify(record), 'PX', ttl);
  }

  async removeInstance(id: string): Promise<void> {
    await this.client.del(instanceRecordKey(this.prefix, id));
  }

  async forceRelease(key: string, announceToken: string): Promise<{ tokens: string[]; fence: number }> {
    const keys = keysOf(this.prefix, key, this.counterOf);
    const reply = await this.client.nestjsRedisLockForceRelease(keys.length, ...keys, `${this.prefix}released`, key, announceToken);
    return { fence: Number(reply[0]), tokens: reply.slice(1).map(String) };
  }
}

/** A flat [field, value, ...] reply as a map. */
function pairs(flat: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
  return map;
}

/** [token, expiry, ...] (Redis ms) as holds, with their fences from the holds hash. */
function holds(flat: readonly string[], fences: Map<string, string>, now: number): RawHold[] {
  const result: RawHold[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const fence = fences.get(flat[i]);
    result.push({ token: flat[i], remainingMs: Number(flat[i + 1]) - now, fence: fence === undefined ? undefined : Number(fence) });
  }
  return result;
}
