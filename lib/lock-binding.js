/**
 * How a `@WithLock` method finds the LockService of the app that created its instance: the
 * decorator marks the class, and LockModule's explorer stores the service on each instance under
 * this private symbol at startup. No global "current service", so several apps in one process
 * (as in tests) never share one.
 */
const BOUND_LOCK_SERVICE = Symbol('nestjs-redis-lock:service');
/** Prototypes declaring at least one @WithLock method. */
const prototypesWithLockedMethods = new WeakSet();
export function markLockedMethodOwner(prototype) {
    prototypesWithLockedMethods.add(prototype);
}
/** Whether the instance's class (or a parent class) has @WithLock methods. */
export function hasLockedMethods(instance) {
    for (let proto = Object.getPrototypeOf(instance); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
        if (prototypesWithLockedMethods.has(proto))
            return true;
    }
    return false;
}
export function bindLockService(instance, service) {
    Object.defineProperty(instance, BOUND_LOCK_SERVICE, { value: service, configurable: true, enumerable: false, writable: true });
}
export function boundLockService(instance) {
    if (instance === null || (typeof instance !== 'object' && typeof instance !== 'function'))
        return undefined;
    return instance[BOUND_LOCK_SERVICE];
}
//# sourceMappingURL=lock-binding.js.map