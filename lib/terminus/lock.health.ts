import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { LockService } from '../lock.service.js';

/**
 * `@nestjs/terminus` health indicator for the lock store: up when locks can be taken (for Redlock,
 * when a quorum of masters answers), with each server's round-trip time and this instance's id
 * and counts (`instance: { id, held, waiting }`). Import it from
 * `nestjs-redis-lock/terminus`, so terminus is needed only by apps that use it.
 *
 * @example
 * \@Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.locks.isHealthy('locks')]); }
 */
@Injectable()
export class LockHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly locks: LockService,
  ) {}

  async isHealthy<const Key extends string = 'locks'>(
    key: Key = 'locks' as Key,
    options: { timeout?: number } = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const session = this.indicators.check(key);
    const health = await this.locks.health(options.timeout ?? 1_000);
    // This instance's own counts (no Redis call): locks it holds, callers waiting for one.
    const { instanceId, held, waiting } = this.locks.activity;
    const data = { nodes: health.nodes, ...(health.quorum === undefined ? {} : { quorum: health.quorum }), instance: { id: instanceId, held, waiting } };
    return health.up ? session.up(data) : session.down(data);
  }
}
