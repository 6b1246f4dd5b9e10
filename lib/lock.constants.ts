/** Injection token of the validated module options (defaults filled in). */
export const LOCK_OPTIONS = Symbol('nestjs-redis-lock:options');
/** Injection token of the store backing this module's LockService. */
export const LOCK_STORE = Symbol('nestjs-redis-lock:store');
/** Injection token of the OpenTelemetry bridge (undefined when @opentelemetry/api is absent or off). */
export const LOCK_TELEMETRY = Symbol('nestjs-redis-lock:telemetry');
