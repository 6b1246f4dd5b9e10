/**
 * Every user-facing message text lives here, so wording stays consistent and each message says
 * what happened, to which key or option, and what to do about it.
 */
/** Renders a value for an error message without ever throwing (symbols, cycles, bigints). */
export function describeValue(value) {
    if (typeof value === 'string')
        return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
    if (typeof value === 'bigint')
        return `${value}n`;
    if (typeof value === 'function')
        return `function ${value.name || '(anonymous)'}`;
    if (typeof value === 'symbol')
        return value.toString();
    if (value === null || typeof value !== 'object')
        return String(value);
    if (Array.isArray(value))
        return `array(${value.length})`;
    const name = value.constructor?.name;
    return name && name !== 'Object' ? `${name} instance` : 'object';
}
export function describeKeys(keys) {
    return keys.length === 1 ? `Lock "${keys[0]}"` : `Locks ${keys.map((k) => `"${k}"`).join(', ')}`;
}
export const MESSAGES = {
    notAcquired: (keys, busyKey, waitedMs, wait) => `${describeKeys(keys)} still busy after ${waitedMs} ms (wait=${wait})` +
        (busyKey !== undefined && keys.length > 1 ? `; "${busyKey}" was held by another owner` : '') +
        `; raise "wait" or use onBusy: 'skip'`,
    waitAborted: (keys) => `Waiting for ${describeKeys(keys).toLowerCase()} was cancelled by the caller's signal`,
    lost: (keys, why) => `${describeKeys(keys)} was lost: ${why}`,
    lostOwner: 'its lease was taken over or deleted in Redis (another owner holds it, or it expired)',
    lostUnreachable: (ttl) => `Redis could not confirm a renewal before the lease (ttl=${ttl} ms) ran out`,
    lostMaxHold: (maxHold) => `it was held for maxHold=${maxHold} ms, so renewal stopped; finish the work sooner or raise "maxHold"`,
    lostShutdown: 'the LockService shut down while it was held',
    lostReleased: 'it was already released',
    lostExpired: (ttl) => `its lease (ttl=${ttl} ms) ran out with autoExtend off; call extend() sooner, raise "ttl" or turn autoExtend on`,
    keyNotString: (key) => `Lock key must be a non-empty string, got ${describeValue(key)}`,
    keyEmpty: 'Lock key must be a non-empty string, got ""',
    keyTooLong: (key, max) => `Lock key is ${key.length} characters long (limit ${max}): ${describeValue(key)}; use a shorter key, e.g. a hash of it`,
    keysEmpty: 'At least one lock key is required, got an empty array',
    configOption: (option, value, rule) => `Invalid LockModule option "${option}": ${describeValue(value)}; ${rule}`,
    configUnknownOption: (option, known) => `Unknown LockModule option "${option}"; known options are: ${known.join(', ')}`,
    configBackends: (given) => given.length === 0
        ? 'LockModule needs exactly one backend: give "redis" (URL, ioredis options or client), "redlock" or "store"; none was given'
        : `LockModule needs exactly one backend, but ${given.map((g) => `"${g}"`).join(' and ')} were given; keep one`,
    configIsGlobalInFactory: 'LockModule option "isGlobal" was returned by an options factory, where it cannot take effect; pass it to forRootAsync({ isGlobal: true, ... }) itself',
    configFairMultiKey: (keys) => `Option "fair" works with one key per call, got ${keys.length} (${keys.map((k) => `"${k}"`).join(', ')}); take them one by one in a fixed order, or drop "fair"`,
    configNotYet: (option, value) => `LockModule option "${option}" (${describeValue(value)}) is not supported by this version of nestjs-redis-lock yet; remove it`,
    configCallOption: (option, value, rule) => `Invalid lock option "${option}": ${describeValue(value)}; ${rule}`,
    configUnknownCallOption: (option, known) => `Unknown lock option "${option}"; known options are: ${known.join(', ')}`,
    decoratorNotMethod: (where) => `@WithLock can only decorate methods, but ${where} is not a function`,
    decoratorOnBusy: (where, value) => `Invalid @WithLock option "onBusy" on ${where}: ${describeValue(value)}; expected 'throw' or 'skip'`,
    decoratorUnbound: (where) => `@WithLock on ${where} has no LockService: import LockModule.forRoot(...) or LockModule.forRootAsync(...) in your application's root module. ` +
        '@WithLock works on controllers and singleton providers that Nest created (not request-scoped, transient or hand-made instances), once the app has initialised',
    decoratorSkipped: (where, keys) => `@WithLock skipped ${where}: ${describeKeys(keys).toLowerCase()} busy (onBusy: 'skip')`,
    decoratorUndeclaredObservable: (where) => `@WithLock on ${where} returned an Observable, but the method's return type is not declared as Observable, ` +
        'so the lock could not be held for its lifetime; declare the return type (e.g. `: Observable<T>`) and the lock is taken on subscribe',
    unavailable: (keys, action) => `Redis could not be reached in time to ${action} ${describeKeys(keys).toLowerCase()}; check the connection`,
    unavailableIsLocked: (key) => `Redis could not be reached in time to check lock "${key}"; check the connection`,
    shutDown: 'LockService has shut down (application closing); no new locks can be taken',
    // Key templates of @WithLock. `where` is the rendered `templateWhere(...)` prefix.
    templateWhere: (template, className, methodName) => `@WithLock(${template}) on ${className}.${methodName}`,
    templateNotString: (where, value) => `${where}: a key template must be a string, an array of strings or a function, got ${describeValue(value)}`,
    templateArrayEmpty: (where) => `${where}: the array of key templates is empty; give at least one key`,
    templateEmpty: (where) => `${where}: a key template is empty; give a non-empty key such as 'order:<id>'`,
    templateUnclosed: (where, template, position) => `${where}: '${template}' has a "<" at position ${position} without a closing ">"` +
        '; use the function form for keys that contain "<" or ">"',
    templateUnopened: (where, template, position) => `${where}: '${template}' has a ">" at position ${position} without an opening "<"` +
        '; use the function form for keys that contain "<" or ">"',
    templateNested: (where, template, position) => `${where}: '${template}' opens a placeholder inside another one at position ${position}; placeholders cannot be nested`,
    templateEmptyPlaceholder: (where, template, position) => `${where}: '${template}' has an empty placeholder "<>" at position ${position}; write <name> or <0>`,
    templateBadSegment: (where, placeholder, segment) => `${where}: placeholder ${placeholder} has an invalid part ${JSON.stringify(segment)}` +
        '; each dot-separated part must be an identifier or an integer, e.g. <dto.items.0.id>',
    templateForbiddenSegment: (where, placeholder, segment) => `${where}: placeholder ${placeholder} uses "${segment}", which key templates never read`,
    templateUnknownParameter: (where, name, parameters) => `${where}: no parameter named "${name}"; ${parameters}. Use a parameter name, or a position like <0>`,
    templateUnreadableParameters: (where, name) => `${where}: cannot resolve <${name}> because the method's parameter names cannot be read from its source` +
        '; use a position like <0> instead',
    templateIndexOutOfRange: (where, placeholder, count) => `${where}: placeholder ${placeholder} is past the method's ${count} declared parameter${count === 1 ? '' : 's'}` +
        ' and the method has no rest parameter',
    templateBrokenPath: (where, placeholder, segment, owner, value) => `${where}: cannot resolve ${placeholder}: cannot read "${segment}" of <${owner}>, which is ${describeValue(value)}`,
    templateBadValue: (where, placeholder, value) => `${where}: ${placeholder} resolved to ${describeValue(value)}` +
        '; a key part must be a non-empty string, a finite number, a bigint or a boolean',
    templateBadFunctionResult: (where, value, detail) => `${where}: the key function returned ${describeValue(value)}${detail ? ` (${detail})` : ''}` +
        '; it must return a non-empty string or a non-empty array of non-empty strings',
};
//# sourceMappingURL=lock.messages.js.map