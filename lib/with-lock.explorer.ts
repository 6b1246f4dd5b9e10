import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { bindLockService, hasLockedMethods } from './lock-binding.js';
import { LockService } from './lock.service.js';

/**
 * Finds, at startup, every controller and provider instance (gateways and microservice handlers
 * included) whose class has `@WithLock` methods, and binds this app's LockService to it. Feature
 * modules need no import of LockModule for the decorator to work.
 */
@Injectable()
export class WithLockExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly locks: LockService,
  ) {}

  onModuleInit(): void {
    for (const wrapper of [...this.discovery.getControllers(), ...this.discovery.getProviders()]) {
      const instance: unknown = wrapper.instance;
      // Request-scoped and transient instances do not exist yet; they are documented as unsupported.
      if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic()) continue;
      if (hasLockedMethods(instance)) bindLockService(instance, this.locks);
    }
  }
}
