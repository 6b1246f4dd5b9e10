import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Cron } from '@nestjs/schedule';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentLock, WithLock } from 'nestjs-redis-lock';
import { instanceId } from './config.js';
import { Ledger } from './ledger.js';

/** Interest per run, accrued on the side and not paid into the balances here. */
const RATE = 0.0001;
/** The period of the @Cron below, in seconds. */
const EVERY_S = 2;

/**
 * Every instance schedules this job, and every tick all of them call it. Without the lock, each
 * tick would accrue interest once per instance.
 */
@Injectable()
export class InterestJob {
  private readonly logger = new Logger(InterestJob.name);
  private readonly instance: string;

  constructor(
    private readonly ledger: Ledger,
    config: ConfigService,
  ) {
    this.instance = instanceId(config);
  }

  // wait: 0 + onBusy: 'skip': the first instance to take the lock runs the job; the others find it
  // busy, skip this tick quietly (a debug log line) and resolve to undefined.
  @Cron('*/2 * * * * *')
  @WithLock('job:interest', { wait: 0, onBusy: 'skip' })
  async accrueInterest(): Promise<void> {
    const tick = EVERY_S * Math.round(Date.now() / 1000 / EVERY_S); // the second this tick was due
    await this.ledger.recordCronRun(`${tick}:${this.instance}`); // the demo reads these: one per tick

    const lock = currentLock()!; // the lock @WithLock holds, without changing the signature
    for (const id of await this.ledger.accountIds()) {
      lock.signal.throwIfAborted();
      await this.ledger.addInterest(id, (await this.ledger.balance(id)) * RATE);
    }

    // Stands for the rest of the work (statements, notifications...). It matters: an instance whose
    // timer fires a little later must still find the lock held, or it would run this tick again.
    // 1 s is far longer than the instances' timers drift apart (milliseconds; more on a busy host).
    await sleep(1_000);
    const due = new Date(tick * 1000).toISOString();
    this.logger.log(`tick ${due}: interest accrued by instance ${this.instance} (fence ${lock.fence})`);
  }
}
