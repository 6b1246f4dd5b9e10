var __decorate = (this && this.__decorate) || function (decorators, target, key, desc) {
    var c = arguments.length, r = c < 3 ? target : desc === null ? desc = Object.getOwnPropertyDescriptor(target, key) : desc, d;
    if (typeof Reflect === "object" && typeof Reflect.decorate === "function") r = Reflect.decorate(decorators, target, key, desc);
    else for (var i = decorators.length - 1; i >= 0; i--) if (d = decorators[i]) r = (c < 3 ? d(r) : c > 3 ? d(target, key, r) : d(target, key)) || r;
    return c > 3 && r && Object.defineProperty(target, key, r), r;
};
import { ConfigurableModuleBuilder, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { LOCK_OPTIONS, LOCK_STORE } from './lock.constants.js';
import { resolveModuleOptions } from './lock-options.validation.js';
import { LockService } from './lock.service.js';
import { RedisLockStore } from './stores/redis.store.js';
import { WithLockExplorer } from './with-lock.explorer.js';
export const { ConfigurableModuleClass: ConfigurableLockModule, MODULE_OPTIONS_TOKEN: LOCK_MODULE_OPTIONS, OPTIONS_TYPE: LOCK_MODULE_OPTIONS_TYPE, ASYNC_OPTIONS_TYPE: LOCK_MODULE_ASYNC_OPTIONS_TYPE, } = new ConfigurableModuleBuilder({ moduleName: 'Lock' })
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createLockOptions')
    .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
    .build();
/**
 * Distributed locks on Redis. `LockModule.forRoot({ redis: 'redis://localhost:6379' })` or
 * `LockModule.forRootAsync({ ... })` provides an injectable `LockService`; options are validated at
 * bootstrap (a `LockConfigError` names the option and the value).
 */
let LockModule = class LockModule extends ConfigurableLockModule {
};
LockModule = __decorate([
    Module({
        imports: [DiscoveryModule],
        providers: [
            { provide: LOCK_OPTIONS, inject: [LOCK_MODULE_OPTIONS], useFactory: resolveModuleOptions },
            {
                provide: LOCK_STORE,
                inject: [LOCK_OPTIONS],
                useFactory: (options) => RedisLockStore.create(options.redis, options.prefix),
            },
            LockService,
            WithLockExplorer,
        ],
        exports: [LockService],
    })
], LockModule);
export { LockModule };
//# sourceMappingURL=lock.module.js.map