import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { LockService } from '../lock.service.js';

/**
 * `@nestjs/terminus` health indicator for the lock store: up when locks can be taken (for Redlock,
 * when a quorum of masters answers), with each server's round-trip time. Import it from
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
    const data = { nodes: health.nodes, ...(health.quorum === undefined ? {} : { quorum: health.quorum }) };
    return health.up ? session.up(data) : session.down(data);
  }
}
