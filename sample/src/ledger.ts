import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Redis } from 'ioredis';
import { redisUrl } from './config.js';

const BALANCE = 'sample:balance:';

/**
 * Where the bank keeps its data: in Redis, so that every instance of the app sees the same
 * accounts. Each call here is a single Redis command; nothing in this class is a lock.
 */
@Injectable()
export class Ledger implements OnApplicationShutdown {
  readonly redis: Redis;

  constructor(config: ConfigService) {
    this.redis = new Redis(redisUrl(config));
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

  /**
   * Stores `value` under `key` unless a writer with a larger fence already did: the resource's
   * half of fencing. A holder that lost its lock without noticing (paused past its lease) carries
   * an older fence than the new holder, so its late write is refused instead of overwriting.
   */
  async writeFenced(key: string, fence: number, value: string): Promise<boolean> {
    return (await this.redis.eval(WRITE_IF_NEWER_FENCE, 1, key, fence, value)) === 1;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit();
  }
}

const WRITE_IF_NEWER_FENCE = `
  if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', KEYS[1], 'fence') or '0') then return 0 end
  redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
  return 1`;
