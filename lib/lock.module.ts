import { ConfigurableModuleBuilder, Module } from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { LockConflictInterceptor } from './lock-conflict.interceptor.js';
import type { LockModuleOptions } from './interfaces/lock-options.interface.js';
import { LOCK_OPTIONS, LOCK_STORE, LOCK_TELEMETRY } from './lock.constants.js';
import { LockTelemetry } from './telemetry/lock-telemetry.js';
import { resolveIsGlobal, resolveModuleOptions, type ResolvedModuleOptions } from './lock-options.validation.js';
import { LockService } from './lock.service.js';
import type { LockStore } from './stores/lock-store.js';
import { MemoryLockStore } from './stores/memory.store.js';
import { RedisLockStore } from './stores/redis.store.js';
import { RedlockStore } from './stores/redlock.store.js';
import { WithLockExplorer } from './with-lock.explorer.js';
import { LeaderExplorer } from './leader.explorer.js';

export const {
  ConfigurableModuleClass: ConfigurableLockModule,
  MODULE_OPTIONS_TOKEN: LOCK_MODULE_OPTIONS,
  OPTIONS_TYPE: LOCK_MODULE_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: LOCK_MODULE_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<LockModuleOptions>({ moduleName: 'Lock' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createLockOptions')
  // A bad isGlobal ('yes', 1) throws a LockConfigError here, when forRoot / forRootAsync is called.
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: resolveIsGlobal(extras.isGlobal) }))
  .build();

/** Options of `LockModule.forRoot(...)`, including `isGlobal`. */
export type LockModuleForRootOptions = typeof LOCK_MODULE_OPTIONS_TYPE;
/** Options of `LockModule.forRootAsync(...)`: `useFactory` + `inject` + `imports`, `useClass` or `useExisting`, and `isGlobal`. */
export type LockModuleAsyncOptions = typeof LOCK_MODULE_ASYNC_OPTIONS_TYPE;

/**
 * Distributed locks on Redis. `LockModule.forRoot({ redis: 'redis://localhost:6379' })` or
 * `LockModule.forRootAsync({ ... })` provides an injectable `LockService`; options are validated at
 * bootstrap (a `LockConfigError` names the option and the value).
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    { provide: LOCK_OPTIONS, inject: [LOCK_MODULE_OPTIONS], useFactory: resolveModuleOptions },
    {
      provide: LOCK_STORE,
      inject: [LOCK_OPTIONS],
      useFactory: ({ backend, prefix }: ResolvedModuleOptions): LockStore =>
        backend.kind === 'memory'
          ? new MemoryLockStore(prefix)
          : backend.kind === 'redlock'
          ? RedlockStore.create(backend.connections, prefix, { hungAfterMs: backend.hungAfter })
          : RedisLockStore.create(backend.connection, {
              prefix,
              waitForReplicas: backend.waitForReplicas,
              replicaTimeout: backend.replicaTimeout,
            }),
    },
    {
      provide: LOCK_TELEMETRY,
      inject: [LOCK_OPTIONS],
      useFactory: (options: ResolvedModuleOptions) => (options.openTelemetry ? LockTelemetry.load() : undefined),
    },
    LockService,
    WithLockExplorer,
    LeaderExplorer,
    { provide: APP_INTERCEPTOR, useClass: LockConflictInterceptor },
  ],
  exports: [LockService],
})
export class LockModule extends ConfigurableLockModule {}
