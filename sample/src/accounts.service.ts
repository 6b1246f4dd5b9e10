import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { LockService } from 'nestjs-redis-lock';
import { redisUrl } from './redis-url.js';

const balanceKey = (id: string) => `sample:balance:${id}`;

/** A toy bank: balances live in Redis, so every instance of the app sees the same accounts. */
@Injectable()
export class AccountsService implements OnApplicationShutdown {
  private readonly redis = new Redis(redisUrl());

  constructor(private readonly locks: LockService) {}

  async balance(id: string): Promise<number> {
    return Number((await this.redis.get(balanceKey(id))) ?? 0);
  }

  /**
   * Read, compute, write, with nothing stopping two requests (in this process or another instance)
   * from reading the same balance: the later write overwrites the earlier one and a deposit is lost.
   */
  async depositUnsafe(id: string, amount: number): Promise<number> {
    const balance = await this.balance(id);
    await sleep(2); // stands for real work between read and write (fraud check, audit log...)
    const updated = balance + amount;
    await this.redis.set(balanceKey(id), updated);
    return updated;
  }

  /**
   * The same code, run while holding the lock on this account, across all instances. Requests for
   * the same account queue for up to 10 s (then 409 Conflict); other accounts are not held up.
   */
  async deposit(id: string, amount: number): Promise<number> {
    return this.locks.withLock(`account:${id}`, () => this.depositUnsafe(id, amount), { wait: 10_000 });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit();
  }
}
