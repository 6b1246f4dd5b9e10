import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { setTimeout as sleep } from 'node:timers/promises';
import { Leader, type Leadership } from 'nestjs-redis-lock';
import { instanceId } from './config.js';
import { Ledger } from './ledger.js';

/** Where the leader records itself, fenced by its epoch: the demo reads it. */
export const LEADER_RECORD = 'sample:leader';

/**
 * A long-lived singleton job: every instance campaigns, exactly one runs it. When that instance
 * stops (SIGTERM: it resigns on shutdown) another takes over at once; when it dies, another takes
 * over once its 5 s lease runs out.
 */
@Injectable()
export class ReconcilerJob {
  private readonly logger = new Logger(ReconcilerJob.name);
  private readonly instance: string;

  constructor(
    private readonly ledger: Ledger,
    config: ConfigService,
  ) {
    this.instance = instanceId(config);
  }

  @Leader('leader:reconciler', { ttl: 5_000 })
  async reconcile(leadership: Leadership): Promise<void> {
    this.logger.log(`instance ${this.instance} leads the reconciler (epoch ${leadership.epoch})`);
    // Fenced by the epoch: a deposed leader that wakes up late cannot overwrite its successor's record.
    await this.ledger.writeFenced(LEADER_RECORD, leadership.epoch, this.instance);
    while (!leadership.signal.aborted) {
      // One reconciliation pass would go here; the accounts stand in for the state to reconcile.
      await this.ledger.accountIds();
      await sleep(1_000, undefined, { signal: leadership.signal }).catch(() => undefined);
    }
    this.logger.log(`instance ${this.instance} no longer leads (epoch ${leadership.epoch})`);
  }
}
