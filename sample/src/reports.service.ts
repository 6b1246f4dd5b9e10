import { ConflictException, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockService } from 'nestjs-redis-lock';
import { instanceId } from './config.js';
import { Ledger } from './ledger.js';

export interface DailyReport {
  balances: Record<string, number>;
  total: number;
  fence: number;
  generatedBy: string;
}

/** A long job that at most one instance runs at a time, written with LockService.withLock. */
@Injectable()
export class ReportsService {
  private readonly instance: string;

  constructor(
    private readonly locks: LockService,
    private readonly ledger: Ledger,
    config: ConfigService,
  ) {
    this.instance = instanceId(config);
  }

  /**
   * `wait: 0`: while any instance is building the report, another request fails at once with
   * LockNotAcquiredError (409 Conflict) rather than queueing to build it again.
   */
  daily(): Promise<DailyReport> {
    return this.locks.withLock(
      'report:daily',
      async (lock) => {
        const balances: Record<string, number> = {};
        for (const id of await this.ledger.accountIds()) {
          // The lease is renewed in the background. If it cannot be (Redis unreachable, process
          // paused past the lease), signal aborts and another instance may already be running:
          // stop between steps, with the signal's reason, a LockLostError.
          lock.signal.throwIfAborted();
          balances[id] = await this.ledger.balance(id);
          await sleep(100); // stands for slow work per account
        }
        lock.signal.throwIfAborted();

        const total = Object.values(balances).reduce((sum, balance) => sum + balance, 0);
        const report: DailyReport = { balances, total, fence: lock.fence, generatedBy: this.instance };
        // The fence travels with the write, so a holder that lost the lock without noticing
        // cannot overwrite the report of the holder that came after it.
        if (!(await this.ledger.writeFenced('sample:report:daily', lock.fence, JSON.stringify(report)))) {
          throw new ConflictException('a newer daily report was written meanwhile');
        }
        return report;
      },
      { wait: 0 },
    );
  }
}
