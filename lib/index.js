export { LockModule } from './lock.module.js';
export { LockService } from './lock.service.js';
export { Lock } from './lock.js';
export { currentLock } from './current-lock.js';
export { WithLock } from './decorators/with-lock.decorator.js';
export { LockConfigError, LockError, LockKeyError, LockLostError, LockNotAcquiredError, LockUnavailableError, } from './errors.js';
export { MAX_KEY_LENGTH } from './lock-keys.js';
//# sourceMappingURL=index.js.map