import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { leaderMethodsOf, type LeaderMethod } from './decorators/leader.decorator.js';
import { LockService } from './lock.service.js';

/**
 * Starts a campaign for every `@Leader` method of this app's controllers and singleton providers
 * once the application has bootstrapped, and stops every campaign (resigning, so another instance
 * takes over at once) when the application shuts down, before LockService releases its locks.
 */
@Injectable()
export class LeaderExplorer implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('LeaderElection');
  private closing = false;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly locks: LockService,
  ) {}

  onApplicationBootstrap(): void {
    const found: Array<{ instance: object; entry: LeaderMethod }> = [];
    const instances = new Set<object>();
    for (const wrapper of [...this.discovery.getControllers(), ...this.discovery.getProviders()]) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic() || instances.has(instance)) continue;
      instances.add(instance);
      for (const entry of leaderMethodsOf(instance)) found.push({ instance, entry });
    }
    if (found.length === 0) return;
    // After the rest of the bootstrap hooks (this module's run before the importing modules'), so a
    // leader method never runs in a half-started application.
    setImmediate(() => {
      if (this.closing) return;
      for (const { instance, entry } of found) {
        const method = (instance as Record<string | symbol, (...args: unknown[]) => unknown>)[entry.method];
        try {
          this.locks.lead(entry.key, (leadership) => method.call(instance, leadership), entry.options);
        } catch (error) {
          this.logger.error(`@Leader(${JSON.stringify(entry.key)}) on ${instance.constructor.name}.${String(entry.method)} could not start: ${String(error)}`);
        }
      }
    });
  }

  /** The first shutdown phase: leaders stop before the app's resources (and the locks) go away. */
  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    await this.locks.stopLeading();
  }
}
