import { Logger } from '@nestjs/common';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { monotonicNow } from '../clock.js';
import { ReplicaShortfallError } from '../errors.js';
import { isRedisClient } from '../lock-options.validation.js';
import { withTimeout } from '../with-timeout.js';
import type { ClusterConnectionOptions, RedisConnection } from '../interfaces/lock-options.interface.js';
import { clusterSlot, SlotCounters } from './cluster-slot.js';
import { HOLDER_TOKEN_LENGTH } from '../instance/holder-token.js';
import type { AcquireOutcome, LeaseShape, LockStore, ReleaseNotice, Renewal, StoreHealth, SuccessionOutcome, WaitIntent } from './lock-store.js';
import {
  ACQUIRE_SCRIPT,
  EXTEND_SCRIPT,
  FAIR_ACQUIRE_SCRIPT,
  FAIR_LEAVE_SCRIPT,
  FAIR_RELEASE_SCRIPT,
  RAISE_FENCES_SCRIPT,
  RELEASE_SCRIPT,
  SEMAPHORE_ACQUIRE_SCRIPT,
  SEMAPHORE_EXTEND_SCRIPT,
  SEMAPHORE_RELEASE_SCRIPT,
  READ_ACQUIRE_SCRIPT,
  QUEUED_ACQUIRE_SCRIPT,
  RELEASE_ONE_SCRIPT,
  RELEASE_TO_SUCCESSOR_SCRIPT,
  QUEUED_SEMAPHORE_ACQUIRE_SCRIPT,
  PERMIT_RELEASE_ONE_SCRIPT,
  PERMIT_LEAVE_SCRIPT,
} from './redis-scripts.js';
import { LuaScript } from './lua-script.js';
import { coalesceWrites } from './write-coalescing.js';

type Client = Redis | Cluster;

/** The scripts run one call at a time (see LuaScript), made once per process. */
const SCRIPTS = {
  acquire: new LuaScript(ACQUIRE_SCRIPT),
  release: new LuaScript(RELEASE_SCRIPT),
  fairAcquire: new LuaScript(FAIR_ACQUIRE_SCRIPT),
  fairRelease: new LuaScript(FAIR_RELEASE_SCRIPT),
  fairLeave: new LuaScript(FAIR_LEAVE_SCRIPT),
  raiseFences: new LuaScript(RAISE_FENCES_SCRIPT),
  semaphoreAcquire: new LuaScript(SEMAPHORE_ACQUIRE_SCRIPT),
  semaphoreRelease: new LuaScript(SEMAPHORE_RELEASE_SCRIPT),
  readAcquire: new LuaScript(READ_ACQUIRE_SCRIPT),
  queuedAcquire: new LuaScript(QUEUED_ACQUIRE_SCRIPT),
  releaseOne: new LuaScript(RELEASE_ONE_SCRIPT),
  releaseToSuccessor: new LuaScript(RELEASE_TO_SUCCESSOR_SCRIPT),
  queuedSemaphoreAcquire: new LuaScript(QUEUED_SEMAPHORE_ACQUIRE_SCRIPT),
  permitReleaseOne: new LuaScript(PERMIT_RELEASE_ONE_SCRIPT),
  permitLeave: new LuaScript(PERMIT_LEAVE_SCRIPT),
};

/**
 * The extend scripts as ioredis commands (the first argument is the number of keys): renewals go
 * out in pipelines, which load the scripts they use before they run. The others run as LuaScript.
 */
interface ScriptCommands {
  nestjsRedisLockExtend(numKeys: number, ...args: Array<string | number>): Promise<number>;
  nestjsRedisLockSemaphoreExtend(numKeys: number, ...args: Array<string | number>): Promise<number>;
}
type ScriptClient = Client & ScriptCommands;
type ScriptPipeline = ReturnType<Client['pipeline']> & {
  [K in keyof ScriptCommands]: (...args: Parameters<ScriptCommands[K]>) => ScriptPipeline;
};

export function isClusterConnectionOptions(value: unknown): value is ClusterConnectionOptions {
  return typeof value === 'object' && value !== null && Array.isArray((value as { cluster?: unknown }).cluster);
}

/** Store-specific settings beyond the connection. */
export interface RedisStoreSettings {
  prefix: string;
  /** After acquiring, wait until this many replicas have the lock (WAIT), else it is not taken. */
  waitForReplicas?: number;
  /** Bound on that WAIT, in ms. */
  replicaTimeout?: number;
}

/**
 * One Redis: standalone, Sentinel (through ioredis options) or Cluster, or a client passed in.
 * On a Cluster, keys of one call that live in different slots are taken slot by slot in slot
 * order, each slot atomically, and rolled back if a later slot is busy: still all or nothing.
 */
export class RedisLockStore implements LockStore {
  private readonly logger = new Logger('LockService');
  private readonly client: ScriptClient;
  private readonly releaseChannel: string;
  /** Single Redis: the one shared fence counter of this prefix. */
  private readonly fenceCounter: string;
  /** Cluster: the shared fence counter of each slot, found lazily. */
  private readonly slotCounters: SlotCounters;
  private subscriber: Client | undefined;
  private listening: Promise<void> | undefined;
  /** Who hears releases: also handed the grants this store's own releases make (see handedOver). */
  private releaseListener: ((notice: ReleaseNotice) => void) | undefined;
  private closed = false;
  /**
   * When the connection last became ready (monotonic ms; -Infinity: never yet, so a status other
   * than ready means it is still being made, not that it dropped). Also read by Redlock to judge a
   * hung master.
   */
  private readyAt = Number.NEGATIVE_INFINITY;

  private constructor(
    client: Client,
    /** Whether we created the client, and therefore close it on shutdown. */
    private readonly ownsClient: boolean,
    private readonly settings: RedisStoreSettings,
  ) {
    this.client = client as ScriptClient;
    if (client.status === 'ready') this.readyAt = monotonicNow();
    client.on('ready', () => {
      this.readyAt = monotonicNow();
    });
    this.releaseChannel = `${settings.prefix}released`;
    this.fenceCounter = `${settings.prefix}fences`;
    this.slotCounters = new SlotCounters(settings.prefix);
    // Idempotent: a client shared by several LockModules gets the same definitions.
    client.defineCommand('nestjsRedisLockExtend', { lua: EXTEND_SCRIPT });
    client.defineCommand('nestjsRedisLockSemaphoreExtend', { lua: SEMAPHORE_EXTEND_SCRIPT });
  }

  static create(connection: RedisConnection | ClusterConnectionOptions, settings: RedisStoreSettings): RedisLockStore {
    if (isRedisClient(connection)) return new RedisLockStore(connection as Client, false, settings);
    let client: Client;
    if (isClusterConnectionOptions(connection)) client = new Cluster(connection.cluster, connection.clusterOptions);
    else if (typeof connection === 'string') client = new Redis(connection);
    else client = new Redis(connection as RedisOptions);
    coalesceWrites(client);
    const store = new RedisLockStore(client, true, settings);
    store.reportErrors(client, 'connection');
    return store;
  }

  /**
   * The connection was up and has dropped; ioredis reconnects by itself, and until then commands
   * would only wait in its offline queue. (Before the first connect, commands queue as usual.)
   */
  get disconnected(): boolean {
    return this.readyAt !== Number.NEGATIVE_INFINITY && this.client.status !== 'ready';
  }

  /** When the connection last became ready (monotonic ms; -Infinity before the first time). */
  get connectedSince(): number {
    return this.readyAt;
  }

  /** @internal The client and prefix, read by inspection (lib/inspection). */
  get inspectionTarget(): { client: Redis | Cluster; prefix: string } {
    return { client: this.client, prefix: this.settings.prefix };
  }

  get isCluster(): boolean {
    return this.client.isCluster === true;
  }

  /** Runs one of the store's scripts: the number of keys, the keys, then the other arguments. */
  private script<T>(script: LuaScript, ...args: Array<string | number>): Promise<T> {
    return script.run<T>(this.client, args);
  }

  async acquire(keys: readonly string[], token: string, ttl: number, intent: WaitIntent): Promise<AcquireOutcome> {
    if (intent.fair) {
      const key = keys[0];
      const reply = await this.script<number[]>(
        SCRIPTS.fairAcquire,
        10,
        ...this.fairKeys(key),
        this.readersKey(key),
        this.permitsKey(key),
        this.writerWaitingKey(key),
        this.wantedKey(key),
        this.legacyFenceKey(key),
        this.queuedByKey(key),
        token,
        ttl,
        intent.fair.presenceTtl,
        intent.announceFor,
        intent.fair.attempt,
      );
      if (reply[0] !== 1) return { acquired: false, busyKey: key, busyForMs: Number(reply[2]) };
      return { acquired: true, fences: [Number(reply[1])], grantedEarlier: reply[2] === 1 };
    }
    if (intent.queue && keys.length === 1 && intent.mode !== 'read') {
      const reply =
        intent.permits === undefined
          ? await this.queuedAcquire(keys[0], token, ttl, intent, intent.queue)
          : await this.queuedPermitAcquire(keys[0], token, ttl, intent, intent.permits, intent.queue);
      if (reply[0] !== 1) return busyOutcome(keys, reply);
      return { acquired: true, fences: [Number(reply[1])], grantedEarlier: reply[2] === 1 };
    }
    const shape: LeaseShape = { permits: intent.permits, mode: intent.mode };
    if (!this.isCluster) {
      // The common case, kept to one script call with no extra allocation.
      const reply = await this.acquireGroup(keys, token, ttl, intent);
      if (reply[0] !== 1) return busyOutcome(keys, reply);
      return { acquired: true, fences: reply.slice(1).map(Number) };
    }
    const fences = new Map<string, number>();
    const taken: string[][] = [];
    for (const group of this.slotGroups(keys)) {
      const reply = await this.acquireGroup(group, token, ttl, intent);
      if (reply[0] !== 1) {
        // All or nothing across slots: give back the slots already taken.
        await Promise.all(taken.map((done) => this.release(done, token, shape)));
        return busyOutcome(group, reply);
      }
      taken.push(group);
      group.forEach((key, i) => fences.set(key, Number(reply[i + 1])));
    }
    return { acquired: true, fences: keys.map((key) => fences.get(key) as number) };
  }

  /** One key, default mode, a caller that will wait: queued for a direct handoff when busy. */
  private queuedAcquire(
    key: string,
    token: string,
    ttl: number,
    intent: WaitIntent,
    queue: NonNullable<WaitIntent['queue']>,
  ): Promise<number[]> {
    const [lockKey, counter, queueKey, waitingKey] = this.fairKeys(key);
    return this.script<number[]>(
      SCRIPTS.queuedAcquire,
      10,
      lockKey,
      counter,
      siblingKey(lockKey, 'fence'),
      siblingKey(lockKey, 'wanted'),
      siblingKey(lockKey, 'readers'),
      siblingKey(lockKey, 'writer-waiting'),
      siblingKey(lockKey, 'permits'),
      queueKey,
      waitingKey,
      siblingKey(lockKey, 'queued-by'),
      token,
      ttl,
      intent.announceFor,
      queue.presenceTtl,
      queue.attempt,
    );
  }

  /** One key, a permit, a caller that will wait: queued for a permit's handoff when full. */
  private queuedPermitAcquire(
    key: string,
    token: string,
    ttl: number,
    intent: WaitIntent,
    permits: number,
    queue: NonNullable<WaitIntent['queue']>,
  ): Promise<number[]> {
    const set = this.permitsKey(key);
    return this.script<number[]>(
      SCRIPTS.queuedSemaphoreAcquire,
      11,
      set,
      holdsOf(set),
      this.fenceKey(key),
      this.wantedKey(key),
      this.lockKey(key),
      this.readersKey(key),
      this.writerWaitingKey(key),
      this.legacyFenceKey(key),
      ...this.permitQueueKeys(key),
      token,
      ttl,
      permits,
      intent.announceFor,
      queue.presenceTtl,
      queue.attempt,
    );
  }

  /** Keys of a permit's give-back with handoff (see permitGiveBack in redis-scripts.ts). */
  private permitGiveBackKeys(key: string): string[] {
    const set = this.permitsKey(key);
    return [
      set,
      holdsOf(set),
      this.wantedKey(key),
      this.lockKey(key),
      this.writerWaitingKey(key),
      this.fenceKey(key),
      this.legacyFenceKey(key),
      ...this.permitQueueKeys(key),
    ];
  }

  /** Queue, presence and queued-by of permit waiters (apart from the exclusive lock's queue). */
  private permitQueueKeys(key: string): [string, string, string] {
    return permitQueueKeysOf(this.permitsKey(key));
  }

  private acquireGroup(keys: readonly string[], token: string, ttl: number, intent: WaitIntent): Promise<Array<number | string>> {
    if (intent.permits !== undefined) {
      return this.script<number[]>(
        SCRIPTS.semaphoreAcquire,
        keys.length * 8,
        ...keys.flatMap((key) => [
          this.permitsKey(key),
          holdsOf(this.permitsKey(key)),
          this.fenceKey(key),
          this.wantedKey(key),
          this.lockKey(key),
          this.readersKey(key),
          this.writerWaitingKey(key),
          this.legacyFenceKey(key),
        ]),
        token,
        ttl,
        intent.permits,
        intent.announceFor,
      );
    }
    if (intent.mode === 'read') {
      return this.script<number[]>(
        SCRIPTS.readAcquire,
        keys.length * 8,
        ...keys.flatMap((key) => [
          this.readersKey(key),
          holdsOf(this.readersKey(key)),
          this.fenceKey(key),
          this.wantedKey(key),
          this.lockKey(key),
          this.permitsKey(key),
          this.writerWaitingKey(key),
          this.legacyFenceKey(key),
        ]),
        token,
        ttl,
        intent.announceFor,
      );
    }
    if (keys.length === 1) {
      // The common case, without the intermediate arrays.
      const lockKey = this.lockKey(keys[0]);
      return this.script<Array<number | string>>(
        SCRIPTS.acquire,
        7,
        lockKey,
        this.fenceCounterOf(lockKey),
        siblingKey(lockKey, 'fence'),
        siblingKey(lockKey, 'wanted'),
        siblingKey(lockKey, 'readers'),
        siblingKey(lockKey, 'writer-waiting'),
        siblingKey(lockKey, 'permits'),
        token,
        ttl,
        intent.announceFor,
      );
    }
    return this.script<Array<number | string>>(
      SCRIPTS.acquire,
      keys.length * 7,
      ...keys.flatMap((key) => [
        this.lockKey(key),
        this.fenceKey(key),
        this.legacyFenceKey(key),
        this.wantedKey(key),
        this.readersKey(key),
        this.writerWaitingKey(key),
        this.permitsKey(key),
      ]),
      token,
      ttl,
      intent.announceFor,
    );
  }

  async extend(renewals: readonly Renewal[]): Promise<Array<boolean | Error>> {
    if (this.isCluster || renewals.length === 1) {
      // A Cluster pipeline must stay within one slot; separate calls are still written together.
      return Promise.all(
        renewals.map(async (renewal) => {
          try {
            const replies = await Promise.all(
              this.slotGroups(renewal.keys).map((group) => this.extendCall(renewal)(...this.extendArgs(group, renewal))),
            );
            return replies.every((reply) => reply === 1);
          } catch (error) {
            return toError(error);
          }
        }),
      );
    }
    const pipeline = this.client.pipeline() as ScriptPipeline;
    for (const renewal of renewals) {
      if (heldInSortedSet(renewal)) pipeline.nestjsRedisLockSemaphoreExtend(...this.extendArgs(renewal.keys, renewal));
      else pipeline.nestjsRedisLockExtend(...this.extendArgs(renewal.keys, renewal));
    }
    const replies = (await pipeline.exec()) ?? [];
    return renewals.map((_, i) => {
      const [error, reply] = replies[i] ?? [new Error('no reply in pipeline'), undefined];
      return error ? toError(error) : reply === 1;
    });
  }

  // Not async, to spare the common release a layer of promises: both paths are async functions,
  // so a failure still arrives as a rejection.
  release(keys: readonly string[], token: string, shape?: LeaseShape): Promise<number> {
    if (!this.isCluster || keys.length === 1) return this.releaseGroup(keys, token, shape);
    return this.releaseAcrossSlots(keys, token, shape);
  }

  private async releaseAcrossSlots(keys: readonly string[], token: string, shape: LeaseShape | undefined): Promise<number> {
    const released = await Promise.all(this.slotGroups(keys).map((group) => this.releaseGroup(group, token, shape)));
    return released.reduce((sum, count) => sum + count, 0);
  }

  private async releaseGroup(keys: readonly string[], token: string, shape: LeaseShape | undefined): Promise<number> {
    if (shape?.fair) {
      // Fair locks are one key each: the release hands the key straight to the first queued waiter.
      const key = keys[0];
      return this.handedOver(await this.script<number | string>(SCRIPTS.fairRelease, 7, ...this.handoffKeys(key), token, this.releaseChannel, key));
    }
    if (keys.length === 1 && shape?.permits !== undefined) {
      // One key's permit: its release can hand the permit straight to a queued waiter.
      const key = keys[0];
      return this.handedOver(await this.script<number | string>(SCRIPTS.permitReleaseOne, 10, ...this.permitGiveBackKeys(key), token, this.releaseChannel, key));
    }
    if (heldInSortedSet(shape)) {
      const sets = keys.flatMap((key) => [...this.heldKeys(key, shape), this.wantedKey(key)]);
      return this.script<number>(SCRIPTS.semaphoreRelease, sets.length, ...sets, token, this.releaseChannel, ...keys);
    }
    if (keys.length === 1) {
      // One key: its release can hand the lock straight to a queued waiter.
      const key = keys[0];
      return this.handedOver(await this.script<number | string>(SCRIPTS.releaseOne, 7, ...this.handoffKeys(key), token, this.releaseChannel, key));
    }
    return this.script<number>(SCRIPTS.release, keys.length, ...keys.map((key) => this.lockKey(key)), token, this.releaseChannel, ...keys);
  }

  async releaseToSuccessor(key: string, token: string, successor: string, successorTtl: number): Promise<SuccessionOutcome> {
    const reply = await this.script<number | string>(
      SCRIPTS.releaseToSuccessor,
      7,
      ...this.handoffKeys(key),
      token,
      this.releaseChannel,
      key,
      successor,
      successorTtl,
    );
    if (typeof reply === 'string' && reply.startsWith('s')) return { released: true, successorFence: Number(reply.slice(1)) };
    if (typeof reply !== 'string') return { released: reply > 0 };
    return { released: true, handedTo: this.hearGrant(reply)?.grantedTo?.token };
  }

  async leaveQueue(key: string, token: string, ttl: number, shape?: LeaseShape): Promise<void> {
    const reply =
      shape?.permits !== undefined
        ? await this.script<number | string>(SCRIPTS.permitLeave, 10, ...this.permitGiveBackKeys(key), token, ttl, this.releaseChannel, key)
        : await this.script<number | string>(SCRIPTS.fairLeave, 7, ...this.handoffKeys(key), token, ttl, this.releaseChannel, key);
    this.handedOver(reply);
  }

  /**
   * Reads the reply of a script that may hand a lock or permit over (a release, a waiter leaving):
   * the grant's message when it did (see ANNOUNCE_GRANT in redis-scripts.ts), else a count. The
   * grant goes to this store's release listener at once, as if the message had arrived: the waiter
   * may well be ours (several callers of one service contending), and the message on the
   * subscriber connection comes later or not at all. The listener sees each grant at most once
   * per path; it tells the two paths' copies apart itself (see ReleaseWaiters).
   */
  private handedOver(reply: number | string): number {
    if (typeof reply !== 'string') return reply;
    this.hearGrant(reply);
    return 1;
  }

  /** Hands a grant's message from a script's reply to the release listener (see handedOver); the notice read from it. */
  private hearGrant(message: string): ReleaseNotice | undefined {
    const notice = parseReleaseMessage(message);
    if (notice && this.releaseListener) this.releaseListener(notice);
    return notice;
  }

  /** Redlock: makes every fence counter at least the fence just handed out (see RAISE_FENCES_SCRIPT). */
  async raiseFences(keys: readonly string[], fences: readonly number[]): Promise<void> {
    const fenceOf = new Map(keys.map((key, i) => [key, fences[i]]));
    await Promise.all(
      this.slotGroups(keys).map((group) =>
        this.script<number>(
          SCRIPTS.raiseFences,
          group.length * 2,
          ...group.flatMap((key) => [this.fenceKey(key), this.legacyFenceKey(key)]),
          ...group.map((key) => fenceOf.get(key) as number),
        ),
      ),
    );
  }

  /**
   * Redlock: writes an exclusive hold back on this master, which lost it (restarted without its
   * data, or let it expire while out) while a quorum of the others still holds it, and raises its fence counters to the lease's
   * fences. Only where the key is free (NX): a key someone else took here stays theirs. Plain SET,
   * never a script: ioredis re-sends a script Redis answered NOSCRIPT to after whatever was sent
   * meanwhile, and a write-back run after the lease's release would leave an orphan hold behind.
   */
  async restoreHold(keys: readonly string[], token: string, fences: readonly number[], ttl: number): Promise<void> {
    await Promise.all([
      ...keys.map((key, i) => this.client.set(this.lockKey(key), `${token}:${fences[i]}`, 'PX', ttl, 'NX')),
      this.raiseFences(keys, fences),
    ]);
  }

  async isLocked(key: string): Promise<boolean> {
    return (await this.client.exists(this.lockKey(key))) === 1;
  }

  async ping(timeoutMs: number): Promise<StoreHealth> {
    const node = this.describeNode();
    const start = monotonicNow();
    try {
      await withTimeout(this.client.ping(), timeoutMs);
      return { up: true, nodes: [{ node, up: true, rttMs: Math.round((monotonicNow() - start) * 100) / 100 }] };
    } catch (error) {
      return { up: false, nodes: [{ node, up: false, error: error instanceof Error ? error.message : String(error) }] };
    }
  }

  /** host:port of the connection (or "cluster" / "sentinel:<name>"), for health reports. */
  private describeNode(): string {
    if (this.isCluster) return 'cluster';
    const options = (this.client as Redis).options;
    if (options.sentinels) return `sentinel:${options.name ?? ''}`;
    return `${options.host ?? 'localhost'}:${options.port ?? 6379}`;
  }

  hearOwnGrants(onRelease: (notice: ReleaseNotice) => void): void {
    this.releaseListener ??= onRelease;
  }

  listenForReleases(onRelease: (notice: ReleaseNotice) => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store closed'));
    this.hearOwnGrants(onRelease);
    this.listening ??= this.subscribe(onRelease).catch((error: unknown) => {
      // Let a later wait try again; until then waiters fall back to polling.
      this.listening = undefined;
      throw error;
    });
    return this.listening;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscriber?.disconnect();
    this.subscriber = undefined;
    if (!this.ownsClient) return;
    if (this.client.status === 'ready') {
      await this.client.quit().catch(() => this.client.disconnect());
    } else {
      this.client.disconnect();
    }
  }

  private async subscribe(onRelease: (notice: ReleaseNotice) => void): Promise<void> {
    // A connection in subscriber mode can run nothing else, so it is a separate one, made lazily:
    // a service that never waits never opens it.
    const subscriber = (this.client as { duplicate(): Client }).duplicate();
    this.subscriber = subscriber;
    this.reportErrors(subscriber, 'release subscriber');
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.releaseChannel) return;
      const notice = parseReleaseMessage(message);
      if (notice) onRelease(notice);
    });
    // ioredis re-subscribes by itself after a reconnect; messages sent meanwhile are covered by the poll.
    await subscriber.subscribe(this.releaseChannel);
    if (this.closed) subscriber.disconnect();
  }

  /**
   * With `waitForReplicas`, a lock counts only once that many replicas have it, so a failover right
   * after cannot lose it. Runs for every grant, including a lock handed over by another client's
   * release: WAIT only covers this connection's own writes, so the lease is first renewed from here
   * (which also proves it is still ours) and WAIT then covers the grant written before it.
   * Rejects when the lock is not ours any more or too few replicas acknowledged it in time; without
   * `waitForReplicas` there is nothing to confirm (undefined).
   */
  confirmGrant(keys: readonly string[], token: string, shape: LeaseShape, ttl: number): Promise<void> | undefined {
    const wanted = this.settings.waitForReplicas;
    return wanted ? this.confirmReplicated(keys, token, shape, ttl, wanted) : undefined;
  }

  /** The grant is still ours and `wanted` replicas have it (WAIT), else it must not count. */
  private async confirmReplicated(keys: readonly string[], token: string, shape: LeaseShape, ttl: number, wanted: number): Promise<void> {
    const timeout = this.settings.replicaTimeout ?? 1_000;
    const renewal: Renewal = { keys, token, ttl, permits: shape.permits, mode: shape.mode };
    const [renewed] = await this.extend([renewal]);
    if (renewed !== true) throw renewed === false ? new Error('the lock was no longer held when its replication was checked') : renewed;
    const acknowledged = Number(await (this.client as Redis).wait(wanted, timeout));
    if (acknowledged >= wanted) return;
    throw new ReplicaShortfallError(acknowledged, wanted, timeout);
  }

  /** Keys grouped by Cluster slot, in slot order (one group when not on a Cluster). */
  private slotGroups(keys: readonly string[]): string[][] {
    if (!this.isCluster || keys.length === 1) return [[...keys]];
    const groups = new Map<number, string[]>();
    for (const key of keys) {
      const slot = clusterSlot(this.lockKey(key));
      const group = groups.get(slot);
      if (group) group.push(key);
      else groups.set(slot, [key]);
    }
    // A fixed global order keeps two callers with overlapping keys from taking turns forever.
    return [...groups.entries()].sort(([a], [b]) => a - b).map(([, group]) => group);
  }

  private extendArgs(keys: readonly string[], renewal: Renewal): [number, ...Array<string | number>] {
    const held = keys.flatMap((key) => this.heldKeys(key, renewal));
    return [held.length, ...held, renewal.token, renewal.ttl];
  }

  private extendCall(renewal: Renewal): (...args: [number, ...Array<string | number>]) => Promise<number> {
    return heldInSortedSet(renewal)
      ? (...args) => this.client.nestjsRedisLockSemaphoreExtend(...args)
      : (...args) => this.client.nestjsRedisLockExtend(...args);
  }

  /** The Redis keys that record this kind of hold on `key`: the lock itself, or a sorted set and its holds hash. */
  private heldKeys(key: string, shape: LeaseShape | undefined): string[] {
    if (shape?.mode === 'read') return [this.readersKey(key), holdsOf(this.readersKey(key))];
    if (shape?.permits !== undefined) return [this.permitsKey(key), holdsOf(this.permitsKey(key))];
    return [this.lockKey(key)];
  }

  /** Fair queue entry -> number of the waiter's attempt that queued it (see redis-scripts.ts). */
  private queuedByKey(key: string): string {
    return siblingKey(this.lockKey(key), 'queued-by');
  }

  /** Lock, fence, queue and presence keys of a fair lock, all in the key's Cluster slot. */
  private fairKeys(key: string): [string, string, string, string] {
    const lockKey = this.lockKey(key);
    return [lockKey, this.fenceCounterOf(lockKey), siblingKey(lockKey, 'queue'), siblingKey(lockKey, 'waiting')];
  }

  /**
   * The keys of the scripts that release one exclusive lock and may hand it over (handOver in
   * redis-scripts.ts): lock, shared fence counter, queue, waiting, legacy fence counter, queued-by,
   * wanted marker.
   */
  private handoffKeys(key: string): string[] {
    // From one lock key (as queuedAcquire does): each helper would escape the user key again.
    const lockKey = this.lockKey(key);
    return [
      lockKey,
      this.fenceCounterOf(lockKey),
      siblingKey(lockKey, 'queue'),
      siblingKey(lockKey, 'waiting'),
      siblingKey(lockKey, 'fence'),
      siblingKey(lockKey, 'queued-by'),
      siblingKey(lockKey, 'wanted'),
    ];
  }

  /** Every Redis key of one user key starts with this, which keeps them in one Cluster slot. */
  private lockKey(key: string): string {
    return lockKeyOf(this.settings.prefix, key);
  }

  /** The shared counter `key`'s fences come from (see redis-scripts.ts). */
  private fenceKey(key: string): string {
    return this.fenceCounterOf(this.lockKey(key));
  }

  /**
   * One counter per prefix on a single Redis (standalone or Sentinel); on a Cluster one per hash
   * slot, named so that it lands in the lock key's slot.
   */
  private fenceCounterOf(lockKey: string): string {
    if (!this.isCluster) return this.fenceCounter;
    return this.slotCounters.nameFor(clusterSlot(lockKey)) ?? siblingKey(lockKey, 'fence');
  }

  /**
   * The per-key counter of versions before 0.2, `<prefix>{K}:fence`: while it exists, new fences
   * for K are above it and written back to it (a rolling deploy; see the README on retiring it).
   */
  private legacyFenceKey(key: string): string {
    return siblingKey(this.lockKey(key), 'fence');
  }

  /** A semaphore's holders: tokens scored by lease expiry (Redis time). */
  private permitsKey(key: string): string {
    return siblingKey(this.lockKey(key), 'permits');
  }

  /** Readers of a read-write lock: tokens scored by lease expiry (Redis time). */
  private readersKey(key: string): string {
    return siblingKey(this.lockKey(key), 'readers');
  }

  /** Exists while a writer waits for readers to leave: new readers then queue behind it. */
  private writerWaitingKey(key: string): string {
    return siblingKey(this.lockKey(key), 'writer-waiting');
  }

  /** Exists while someone waits for the key, so its release is announced. */
  private wantedKey(key: string): string {
    return siblingKey(this.lockKey(key), 'wanted');
  }

  /** Connections we open report errors through the Nest logger instead of ioredis' console fallback. */
  private reportErrors(client: Client, role: string): void {
    let lastLogged = 0;
    client.on('error', (error: Error) => {
      const now = Date.now();
      if (now - lastLogged < 10_000) return; // a down Redis errors on every reconnect attempt
      lastLogged = now;
      this.logger.warn(`Redis ${role} error: ${error.message}`);
    });
  }
}

/**
 * `<prefix>{key}`: Redis Cluster hashes only the text between the first `{` and the next `}`, so
 * the lock and every key derived from it (`:fence`, `:permits`, ...) share one slot. A key that
 * starts with `}` would leave that tag empty (the whole name is hashed, so its keys scatter and
 * every call fails with CROSSSLOT): such a key is written `<prefix>~{<escaped key>}` instead, with
 * `%` and `}` percent-encoded, which keeps a non-empty tag. The `~` where every other layout has
 * `{` means the two forms can never name the same Redis key, and every other key keeps the layout
 * earlier versions used (so a rolling deploy sees the same keys).
 */
export function lockKeyOf(prefix: string, key: string): string {
  if (!key.startsWith('}')) return `${prefix}{${key}}`;
  return `${prefix}~{${key.replace(/%/g, '%25').replace(/\}/g, '%7D')}}`;
}

/** What a key kept beside a lock key holds: its name is `<lock key>:<sibling>`. */
export type Sibling = 'fence' | 'wanted' | 'readers' | 'writer-waiting' | 'permits' | 'queue' | 'waiting' | 'queued-by';

/** A key beside a lock key: the same hash tag, so the same Cluster slot. One spelling of every name. */
export function siblingKey(lockKey: string, sibling: Sibling): string {
  return `${lockKey}:${sibling}`;
}

/** The hash beside a permits or readers set that keeps each hold's fence (and a semaphore's limit). */
export function holdsOf(setKey: string): string {
  return `${setKey}:holds`;
}

/** Queue, presence and queued-by of a key's permit waiters, beside its permits set (apart from the exclusive lock's queue). */
export function permitQueueKeysOf(permitsKey: string): [queue: string, waiting: string, queuedBy: string] {
  return [`${permitsKey}:queue`, `${permitsKey}:waiting`, `${permitsKey}:queued-by`];
}

/**
 * Permits and readers are both a token scored by expiry in a sorted set, so they share the
 * semaphore extend and release scripts; exclusive holds are the lock key itself.
 */
function heldInSortedSet(shape: LeaseShape | undefined): boolean {
  return shape?.permits !== undefined || shape?.mode === 'read';
}

/** Reads a busy reply of the acquire scripts: {0, index, ms} or, for a semaphore, {-1, index, limit}. */
function busyOutcome(keys: readonly string[], reply: ReadonlyArray<number | string>): AcquireOutcome {
  const busyKey = keys[Number(reply[1]) - 1];
  if (Number(reply[0]) === -1) return { acquired: false, busyKey, busyForMs: -1, permitsInUse: Number(reply[2]) };
  return { acquired: false, busyKey, busyForMs: Number(reply[2]) };
}

/** Token length in hex characters: instance id, time and 128 random bits (see lib/instance/holder-token.ts). */
const TOKEN_LENGTH = HOLDER_TOKEN_LENGTH;

/**
 * "r<token><key>" for a release, "g<token><fence>:<key>" for a fair handover (see redis-scripts.ts).
 * For a handover, `releasedBy` is the new holder's token: it identifies the event all the same.
 */
export function parseReleaseMessage(message: string): ReleaseNotice | undefined {
  const token = message.slice(1, 1 + TOKEN_LENGTH);
  if (message.startsWith('r')) return { key: message.slice(1 + TOKEN_LENGTH), releasedBy: token };
  const handoff = message.startsWith('h');
  if (!handoff && !message.startsWith('g')) return undefined;
  const separator = message.indexOf(':', 1 + TOKEN_LENGTH);
  if (separator < 0) return undefined;
  const fence = Number(message.slice(1 + TOKEN_LENGTH, separator));
  if (!handoff) return { key: message.slice(separator + 1), releasedBy: token, grantedTo: { token, fence } };
  // "h<token><fence>:<attempt>:<key>": the attempt that queued the waiter (digits only).
  const second = message.indexOf(':', separator + 1);
  if (second < 0) return undefined;
  const attempt = Number(message.slice(separator + 1, second));
  if (!Number.isSafeInteger(attempt)) return undefined;
  return { key: message.slice(second + 1), releasedBy: token, grantedTo: { token, fence, attempt } };
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
