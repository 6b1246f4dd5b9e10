import type { OnApplicationShutdown } from '@nestjs/common';
import type { ConfigService } from '@nestjs/config';
import { Redis } from 'ioredis';
import { redisUrl, sampleStore } from './config.js';

/**
 * Where the bank keeps its data, so that every instance of the app sees the same accounts. Each
 * method is a single step (one Redis command in RedisLedger); nothing here is a lock.
 *
 * An abstract class rather than an interface, so that it is also the injection token: services
 * ask for a `Ledger`, and AppModule provides the one SAMPLE_STORE selects (createLedger below).
 */
export abstract class Ledger {
  abstract balance(id: string): Promise<number>;
  abstract setBalance(id: string, balance: number): Promise<void>;
  /** The ids of every account that has a balance, sorted. */
  abstract accountIds(): Promise<string[]>;
  /** Adds to the interest accrued on the side for an account (not paid into the balance). */
  abstract addInterest(id: string, amount: number): Promise<void>;
  /** One entry per run of the interest job, `<tick second>:<instance>`: the demo checks one per tick. */
  abstract recordCronRun(entry: string): Promise<void>;
  abstract cronRuns(): Promise<string[]>;
  /**
   * Stores `value` under `key` unless a writer with a larger fence already did: the resource's
   * half of fencing. A holder that lost its lock without noticing (paused past its lease) carries
   * an older fence than the new holder, so its late write is refused instead of overwriting.
   */
  abstract writeFenced(key: string, fence: number, value: string): Promise<boolean>;
  /** What the last accepted `writeFenced` stored under `key`, with its fence. */
  abstract readFenced(key: string): Promise<{ fence: number; value: string } | undefined>;
}

export function createLedger(config: ConfigService): Ledger {
  return sampleStore(config) === 'memory' ? new MemoryLedger() : new RedisLedger(redisUrl(config));
}

const BALANCE = 'sample:balance:';
const INTEREST = 'sample:interest';
const CRON_RUNS = 'sample:cron:runs';

/** The data in Redis: shared by every instance, in any process. */
export class RedisLedger extends Ledger implements OnApplicationShutdown {
  private readonly redis: Redis;

  constructor(url: string) {
    super();
    this.redis = new Redis(url);
  }

  async balance(id: string): Promise<number> {
    return Number((await this.redis.get(BALANCE + id)) ?? 0);
  }

  async setBalance(id: string, balance: number): Promise<void> {
    await this.redis.set(BALANCE + id, balance);
  }

  async accountIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const keys of this.redis.scanStream({ match: `${BALANCE}*`, count: 100 })) {
      for (const key of keys as string[]) ids.push(key.slice(BALANCE.length));
    }
    return ids.sort();
  }

  async addInterest(id: string, amount: number): Promise<void> {
    await this.redis.hincrbyfloat(INTEREST, id, amount);
  }

  async recordCronRun(entry: string): Promise<void> {
    await this.redis.rpush(CRON_RUNS, entry);
  }

  cronRuns(): Promise<string[]> {
    return this.redis.lrange(CRON_RUNS, 0, -1);
  }

  async writeFenced(key: string, fence: number, value: string): Promise<boolean> {
    return (await this.redis.eval(WRITE_IF_NEWER_FENCE, 1, key, fence, value)) === 1;
  }

  async readFenced(key: string): Promise<{ fence: number; value: string } | undefined> {
    const { fence, value } = await this.redis.hgetall(key);
    return fence === undefined || value === undefined ? undefined : { fence: Number(fence), value };
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit();
  }
}

const WRITE_IF_NEWER_FENCE = `
  if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', KEYS[1], 'fence') or '0') then return 0 end
  redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
  return 1`;

/**
 * The data in this process, shared by every app in it (like `LockModule.forRoot({ store: 'memory' })`
 * for the locks), and lost when it exits.
 */
export class MemoryLedger extends Ledger {
  private static readonly balances = new Map<string, number>();
  private static readonly interest = new Map<string, number>();
  private static readonly runs: string[] = [];
  private static readonly fenced = new Map<string, { fence: number; value: string }>();

  async balance(id: string): Promise<number> {
    return MemoryLedger.balances.get(id) ?? 0;
  }

  async setBalance(id: string, balance: number): Promise<void> {
    MemoryLedger.balances.set(id, balance);
  }

  async accountIds(): Promise<string[]> {
    return [...MemoryLedger.balances.keys()].sort();
  }

  async addInterest(id: string, amount: number): Promise<void> {
    MemoryLedger.interest.set(id, (MemoryLedger.interest.get(id) ?? 0) + amount);
  }

  async recordCronRun(entry: string): Promise<void> {
    MemoryLedger.runs.push(entry);
  }

  async cronRuns(): Promise<string[]> {
    return [...MemoryLedger.runs];
  }

  async writeFenced(key: string, fence: number, value: string): Promise<boolean> {
    if (fence <= (MemoryLedger.fenced.get(key)?.fence ?? 0)) return false;
    MemoryLedger.fenced.set(key, { fence, value });
    return true;
  }

  async readFenced(key: string): Promise<{ fence: number; value: string } | undefined> {
    return MemoryLedger.fenced.get(key);
  }
}
