var __decorate = (this && this.__decorate) || function (decorators, target, key, desc) {
    var c = arguments.length, r = c < 3 ? target : desc === null ? desc = Object.getOwnPropertyDescriptor(target, key) : desc, d;
    if (typeof Reflect === "object" && typeof Reflect.decorate === "function") r = Reflect.decorate(decorators, target, key, desc);
    else for (var i = decorators.length - 1; i >= 0; i--) if (d = decorators[i]) r = (c < 3 ? d(r) : c > 3 ? d(target, key, r) : d(target, key)) || r;
    return c > 3 && r && Object.defineProperty(target, key, r), r;
};
var __metadata = (this && this.__metadata) || function (k, v) {
    if (typeof Reflect === "object" && typeof Reflect.metadata === "function") return Reflect.metadata(k, v);
};
import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { bindLockService, hasLockedMethods } from './lock-binding.js';
import { LockService } from './lock.service.js';
/**
 * Finds, at startup, every controller and provider instance (gateways and microservice handlers
 * included) whose class has `@WithLock` methods, and binds this app's LockService to it. Feature
 * modules need no import of LockModule for the decorator to work.
 */
let WithLockExplorer = class WithLockExplorer {
    constructor(discovery, locks) {
        this.discovery = discovery;
        this.locks = locks;
    }
    onModuleInit() {
        for (const wrapper of [...this.discovery.getControllers(), ...this.discovery.getProviders()]) {
            const instance = wrapper.instance;
            // Request-scoped and transient instances do not exist yet; they are documented as unsupported.
            if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic())
                continue;
            if (hasLockedMethods(instance))
                bindLockService(instance, this.locks);
        }
    }
};
WithLockExplorer = __decorate([
    Injectable(),
    __metadata("design:paramtypes", [DiscoveryService,
        LockService])
], WithLockExplorer);
export { WithLockExplorer };
//# sourceMappingURL=with-lock.explorer.js.map