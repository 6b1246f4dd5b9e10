import { LockConfigError } from './errors.js';
import { MESSAGES } from './lock.messages.js';
export const DEFAULT_TTL = 30_000;
export const DEFAULT_WAIT = 10_000;
export const DEFAULT_PREFIX = 'lock:';
export const DEFAULT_POLL_INTERVAL = 1_000;
const MODULE_OPTION_NAMES = [
    'redis',
    'redlock',
    'store',
    'prefix',
    'ttl',
    'wait',
    'autoExtend',
    'maxHold',
    'fair',
    'pollInterval',
];
const CALL_OPTION_NAMES = ['ttl', 'wait', 'autoExtend', 'maxHold', 'fair', 'signal', 'permits', 'mode'];
function isPlainObject(value) {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
        return false;
    const proto = Object.getPrototypeOf(value);
    return proto === Object.prototype || proto === null;
}
/** Looks like an ioredis client (duck-typed: the user's ioredis copy may differ from ours). */
export function isRedisClient(value) {
    return (typeof value === 'object' &&
        value !== null &&
        typeof value.defineCommand === 'function' &&
        typeof value.duplicate === 'function');
}
function positiveMs(option, value, message) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
        throw new LockConfigError(message(option, value, 'expected a finite number of milliseconds greater than 0'));
    }
    // Redis takes whole milliseconds; rounding up never shortens what the user asked for.
    return Math.ceil(value);
}
function nonNegativeMs(option, value, message) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw new LockConfigError(message(option, value, 'expected a finite number of milliseconds, 0 or more'));
    }
    return Math.ceil(value);
}
function bool(option, value, message) {
    if (typeof value !== 'boolean')
        throw new LockConfigError(message(option, value, 'expected true or false'));
    return value;
}
function rejectUnknown(options, known, message) {
    for (const name of Object.keys(options)) {
        if (!known.includes(name))
            throw new LockConfigError(message(name, known));
    }
}
function validateRedisConnection(value) {
    if (typeof value === 'string') {
        if (!/^rediss?:\/\//i.test(value)) {
            throw new LockConfigError(MESSAGES.configOption('redis', value, 'expected a URL like redis://host:6379 (or rediss:// for TLS)'));
        }
        return value;
    }
    if (isRedisClient(value) || isPlainObject(value))
        return value;
    throw new LockConfigError(MESSAGES.configOption('redis', value, 'expected a redis:// URL, ioredis options, or an ioredis Redis/Cluster client'));
}
/** Validates LockModule options at bootstrap; every failure is a LockConfigError naming option and value. */
export function resolveModuleOptions(options) {
    if (!isPlainObject(options)) {
        throw new LockConfigError(MESSAGES.configOption('options', options, 'LockModule.forRoot expects an options object'));
    }
    if ('isGlobal' in options)
        throw new LockConfigError(MESSAGES.configIsGlobalInFactory);
    rejectUnknown(options, MODULE_OPTION_NAMES, MESSAGES.configUnknownOption);
    const backends = ['redis', 'redlock', 'store'].filter((name) => options[name] !== undefined);
    if (backends.length !== 1)
        throw new LockConfigError(MESSAGES.configBackends(backends));
    if (options.redlock !== undefined)
        throw new LockConfigError(MESSAGES.configNotYet('redlock', options.redlock));
    if (options.store !== undefined) {
        if (options.store !== 'memory') {
            throw new LockConfigError(MESSAGES.configOption('store', options.store, "the only store is 'memory'"));
        }
        throw new LockConfigError(MESSAGES.configNotYet('store', options.store));
    }
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (typeof prefix !== 'string' || prefix.length === 0) {
        throw new LockConfigError(MESSAGES.configOption('prefix', prefix, 'expected a non-empty string, so lock keys never collide with your other keys'));
    }
    const defaults = options;
    return {
        redis: validateRedisConnection(options.redis),
        prefix,
        ttl: defaults.ttl === undefined ? DEFAULT_TTL : positiveMs('ttl', defaults.ttl, MESSAGES.configOption),
        wait: defaults.wait === undefined ? DEFAULT_WAIT : nonNegativeMs('wait', defaults.wait, MESSAGES.configOption),
        autoExtend: defaults.autoExtend === undefined ? true : bool('autoExtend', defaults.autoExtend, MESSAGES.configOption),
        maxHold: defaults.maxHold === undefined ? undefined : positiveMs('maxHold', defaults.maxHold, MESSAGES.configOption),
        fair: defaults.fair === undefined ? false : bool('fair', defaults.fair, MESSAGES.configOption),
        pollInterval: defaults.pollInterval === undefined
            ? DEFAULT_POLL_INTERVAL
            : positiveMs('pollInterval', defaults.pollInterval, MESSAGES.configOption),
    };
}
/** Validates one call's options and merges them over the module defaults. */
export function resolveCallOptions(options, defaults) {
    if (options === undefined) {
        const { ttl, wait, autoExtend, maxHold, fair } = defaults;
        return { ttl, wait, autoExtend, maxHold, fair, signal: undefined };
    }
    if (typeof options !== 'object' || options === null) {
        throw new LockConfigError(MESSAGES.configCallOption('options', options, 'expected an options object'));
    }
    const given = options;
    rejectUnknown(given, CALL_OPTION_NAMES, MESSAGES.configUnknownCallOption);
    if (options.permits !== undefined)
        throw new LockConfigError(MESSAGES.configNotYet('permits', options.permits));
    if (options.mode !== undefined && options.mode !== 'exclusive') {
        if (options.mode === 'read')
            throw new LockConfigError(MESSAGES.configNotYet('mode', options.mode));
        throw new LockConfigError(MESSAGES.configCallOption('mode', options.mode, "expected 'exclusive' or 'read'"));
    }
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
        throw new LockConfigError(MESSAGES.configCallOption('signal', options.signal, 'expected an AbortSignal'));
    }
    return {
        ttl: options.ttl === undefined ? defaults.ttl : positiveMs('ttl', options.ttl, MESSAGES.configCallOption),
        wait: options.wait === undefined ? defaults.wait : nonNegativeMs('wait', options.wait, MESSAGES.configCallOption),
        autoExtend: options.autoExtend === undefined ? defaults.autoExtend : bool('autoExtend', options.autoExtend, MESSAGES.configCallOption),
        maxHold: options.maxHold === undefined ? defaults.maxHold : positiveMs('maxHold', options.maxHold, MESSAGES.configCallOption),
        fair: options.fair === undefined ? defaults.fair : bool('fair', options.fair, MESSAGES.configCallOption),
        signal: options.signal,
    };
}
//# sourceMappingURL=lock-options.validation.js.map