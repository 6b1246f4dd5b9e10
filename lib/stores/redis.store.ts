import { Logger } from '@nestjs/common';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import { isRedisClient } from '../lock-options.validation.js';
import type { RedisConnection } from '../interfaces/lock-options.interface.js';
import type { AcquireOutcome, FairWaiting, LockStore, ReleaseNotice, Renewal } from './lock-store.js';
import {
  ACQUIRE_SCRIPT,
  EXTEND_SCRIPT,
  FAIR_ACQUIRE_SCRIPT,
  FAIR_LEAVE_SCRIPT,
  FAIR_RELEASE_SCRIPT,
  RELEASE_SCRIPT,
} from './redis-scripts.js';

type Client = Redis | Cluster;

/** The scripts as ioredis commands; the first argument is the number of keys. */
interface ScriptCommands {
  nestjsRedisLockAcquire(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
  nestjsRedisLockExtend(numKeys: number, ...args: Array<string | number>): Promise<number>;
  nestjsRedisLockRelease(numKeys: number, ...args: Array<string | number>): Promise<number>;
  nestjsRedisLockFairAcquire(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
  nestjsRedisLockFairRelease(numKeys: number, ...args: Array<string | number>): Promise<number>;
  nestjsRedisLockFairLeave(numKeys: number, ...args: Array<string | number>): Promise<number>;
}
type ScriptClient = Client & ScriptCommands;
type ScriptPipeline = ReturnType<Client['pipeline']> & {
  [K in keyof ScriptCommands]: (...args: Parameters<ScriptCommands[K]>) => ScriptPipeline;
};

/** One Redis (standalone or Sentinel through ioredis options, or a client passed in). */
export class RedisLockStore implements LockStore {
  private readonly logger = new Logger('LockService');
  private readonly client: ScriptClient;
  private readonly releaseChannel: string;
  private subscriber: Client | undefined;
  private listening: Promise<void> | undefined;
  private closed = false;

  private constructor(
    client: Client,
    /** Whether we created the client, and therefore close it on shutdown. */
    private readonly ownsClient: boolean,
    private readonly prefix: string,
  ) {
    this.client = client as ScriptClient;
    this.releaseChannel = `${prefix}released`;
    // Idempotent: a client shared by several LockModules gets the same definitions.
    client.defineCommand('nestjsRedisLockAcquire', { lua: ACQUIRE_SCRIPT });
    client.defineCommand('nestjsRedisLockExtend', { lua: EXTEND_SCRIPT });
    client.defineCommand('nestjsRedisLockRelease', { lua: RELEASE_SCRIPT });
    client.defineCommand('nestjsRedisLockFairAcquire', { lua: FAIR_ACQUIRE_SCRIPT });
    client.defineCommand('nestjsRedisLockFairRelease', { lua: FAIR_RELEASE_SCRIPT });
    client.defineCommand('nestjsRedisLockFairLeave', { lua: FAIR_LEAVE_SCRIPT });
  }

  static create(connection: RedisConnection, prefix: string): RedisLockStore {
    if (isRedisClient(connection)) return new RedisLockStore(connection as Client, false, prefix);
    const client =
      typeof connection === 'string' ? new Redis(connection) : new Redis(connection as RedisOptions);
    const store = new RedisLockStore(client, true, prefix);
    store.reportErrors(client, 'connection');
    return store;
  }

  async acquire(keys: readonly string[], token: string, ttl: number, fair?: FairWaiting): Promise<AcquireOutcome> {
    const reply = fair
      ? await this.client.nestjsRedisLockFairAcquire(4, ...this.fairKeys(keys[0]), token, ttl, fair.presenceTtl)
      : await this.client.nestjsRedisLockAcquire(
          keys.length * 2,
          ...keys.map((key) => this.lockKey(key)),
          ...keys.map((key) => `${this.lockKey(key)}:fence`),
          token,
          ttl,
        );
    if (reply[0] === 1) {
      if (fair) return { acquired: true, fences: [Number(reply[1])], grantedEarlier: reply[2] === 1 };
      return { acquired: true, fences: reply.slice(1).map(Number) };
    }
    return { acquired: false, busyKey: keys[reply[1] - 1], busyForMs: Number(reply[2]) };
  }

  async extend(renewals: readonly Renewal[]): Promise<Array<boolean | Error>> {
    const argsOf = (renewal: Renewal): [number, ...Array<string | number>] => [
      renewal.keys.length,
      ...renewal.keys.map((key) => this.lockKey(key)),
      renewal.token,
      renewal.ttl,
    ];
    if (renewals.length === 1 || this.client.isCluster) {
      // A Cluster pipeline must stay within one slot; separate calls are still written together.
      return Promise.all(
        renewals.map((renewal) =>
          this.client.nestjsRedisLockExtend(...argsOf(renewal)).then(
            (reply) => reply === 1,
            (error: unknown) => toError(error),
          ),
        ),
      );
    }
    const pipeline = this.client.pipeline() as ScriptPipeline;
    for (const renewal of renewals) pipeline.nestjsRedisLockExtend(...argsOf(renewal));
    const replies = (await pipeline.exec()) ?? [];
    return renewals.map((_, i) => {
      const [error, reply] = replies[i] ?? [new Error('no reply in pipeline'), undefined];
      return error ? toError(error) : reply === 1;
    });
  }

  async release(keys: readonly string[], token: string, fair?: boolean): Promise<number> {
    if (fair) return this.client.nestjsRedisLockFairRelease(4, ...this.fairKeys(keys[0]), token, this.releaseChannel, keys[0]);
    const lockKeys = keys.map((key) => this.lockKey(key));
    return this.client.nestjsRedisLockRelease(keys.length, ...lockKeys, token, this.releaseChannel, ...keys);
  }

  async leaveQueue(key: string, token: string, ttl: number): Promise<void> {
    await this.client.nestjsRedisLockFairLeave(4, ...this.fairKeys(key), token, ttl, this.releaseChannel, key);
  }

  async isLocked(key: string): Promise<boolean> {
    return (await this.client.exists(this.lockKey(key))) === 1;
  }

  listenForReleases(onRelease: (notice: ReleaseNotice) => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store closed'));
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

  /** Lock, fence, queue and presence keys of a fair lock, all in the key's Cluster slot. */
  private fairKeys(key: string): [string, string, string, string] {
    const lockKey = this.lockKey(key);
    return [lockKey, `${lockKey}:fence`, `${lockKey}:queue`, `${lockKey}:waiting`];
  }

  /** `<prefix>{key}`: the braces keep the lock and its fence counter in one Cluster slot. */
  private lockKey(key: string): string {
    return `${this.prefix}{${key}}`;
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

/** Token length in hex characters (128 bits). */
const TOKEN_LENGTH = 32;

/** "r<key>" for a release, "g<token><fence>:<key>" for a fair handover (see redis-scripts.ts). */
export function parseReleaseMessage(message: string): ReleaseNotice | undefined {
  if (message.startsWith('r')) return { key: message.slice(1) };
  if (!message.startsWith('g')) return undefined;
  const token = message.slice(1, 1 + TOKEN_LENGTH);
  const separator = message.indexOf(':', 1 + TOKEN_LENGTH);
  if (separator < 0) return undefined;
  const fence = Number(message.slice(1 + TOKEN_LENGTH, separator));
  return { key: message.slice(separator + 1), grantedTo: { token, fence } };
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
