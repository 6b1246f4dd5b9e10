import { Logger } from '@nestjs/common';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import { isRedisClient } from '../lock-options.validation.js';
import type { RedisConnection } from '../interfaces/lock-options.interface.js';
import type { AcquireOutcome, LockStore, Renewal } from './lock-store.js';
import { ACQUIRE_SCRIPT, EXTEND_SCRIPT, RELEASE_SCRIPT } from './redis-scripts.js';

type Client = Redis | Cluster;

/** The scripts as ioredis commands; the first argument is the number of keys. */
interface ScriptCommands {
  nestjsRedisLockAcquire(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
  nestjsRedisLockExtend(numKeys: number, ...args: Array<string | number>): Promise<number>;
  nestjsRedisLockRelease(numKeys: number, ...args: Array<string | number>): Promise<number>;
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
  }

  static create(connection: RedisConnection, prefix: string): RedisLockStore {
    if (isRedisClient(connection)) return new RedisLockStore(connection as Client, false, prefix);
    const client =
      typeof connection === 'string' ? new Redis(connection) : new Redis(connection as RedisOptions);
    const store = new RedisLockStore(client, true, prefix);
    store.reportErrors(client, 'connection');
    return store;
  }

  async acquire(keys: readonly string[], token: string, ttl: number): Promise<AcquireOutcome> {
    const lockKeys = keys.map((key) => this.lockKey(key));
    const fenceKeys = lockKeys.map((lockKey) => `${lockKey}:fence`);
    const reply = await this.client.nestjsRedisLockAcquire(keys.length * 2, ...lockKeys, ...fenceKeys, token, ttl);
    if (reply[0] === 1) return { acquired: true, fences: reply.slice(1).map(Number) };
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

  async release(keys: readonly string[], token: string): Promise<number> {
    const lockKeys = keys.map((key) => this.lockKey(key));
    return this.client.nestjsRedisLockRelease(keys.length, ...lockKeys, token, this.releaseChannel, ...keys);
  }

  async isLocked(key: string): Promise<boolean> {
    return (await this.client.exists(this.lockKey(key))) === 1;
  }

  listenForReleases(onRelease: (key: string) => void): Promise<void> {
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

  private async subscribe(onRelease: (key: string) => void): Promise<void> {
    // A connection in subscriber mode can run nothing else, so it is a separate one, made lazily:
    // a service that never waits never opens it.
    const subscriber = (this.client as { duplicate(): Client }).duplicate();
    this.subscriber = subscriber;
    this.reportErrors(subscriber, 'release subscriber');
    subscriber.on('message', (channel: string, key: string) => {
      if (channel === this.releaseChannel) onRelease(key);
    });
    // ioredis re-subscribes by itself after a reconnect; messages sent meanwhile are covered by the poll.
    await subscriber.subscribe(this.releaseChannel);
    if (this.closed) subscriber.disconnect();
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

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
