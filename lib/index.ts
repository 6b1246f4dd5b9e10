export { LockModule, type LockModuleAsyncOptions, type LockModuleForRootOptions } from './lock.module.js';
export { LockService } from './lock.service.js';
export { Lock } from './lock.js';
export { currentLock } from './current-lock.js';
export { WithLock, type WithLockOptions } from './decorators/with-lock.decorator.js';
export { Leader } from './decorators/leader.decorator.js';
export type { KeyTemplate } from './key-template.js';
export type { LeaderEvent, LockEvent, LockEventListener } from './interfaces/lock-event.interface.js';
export type { LeadOptions, LeaderCampaign, Leadership, ResignReason } from './interfaces/leadership.interface.js';
export type {
  AcquireOptions,
  ClusterConnectionOptions,
  LockModuleOptions,
  LockOptionsFactory,
  LockTimingOptions,
  RedisConnection,
} from './interfaces/lock-options.interface.js';
export {
  LockConfigError,
  LockError,
  LockKeyError,
  LockLostError,
  LockNotAcquiredError,
  LockUnavailableError,
} from './errors.js';
export { MAX_KEY_LENGTH } from './lock-keys.js';
export type { NodeHealth, StoreHealth } from './stores/lock-store.js';
export type {
  ForcedRelease,
  LockHolderInfo,
  LockInfo,
  LockInstanceInfo,
  LockListOptions,
  LockMasterInfo,
} from './inspection/lock-info.interface.js';
export type { LockListing } from './inspection/lock-inspector.js';
