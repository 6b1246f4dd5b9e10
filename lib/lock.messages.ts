/**
 * Every user-facing message text lives here, so wording stays consistent and each message says
 * what happened, to which key or option, and what to do about it.
 */

/** Renders a value for an error message without ever throwing (symbols, cycles, bigints). */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value === 'symbol') return value.toString();
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `array(${value.length})`;
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `${name} instance` : 'object';
}

export function describeKeys(keys: readonly string[]): string {
  return keys.length === 1 ? `Lock "${keys[0]}"` : `Locks ${keys.map((k) => `"${k}"`).join(', ')}`;
}

export const MESSAGES = {
  notAcquired: (keys: readonly string[], busyKey: string | undefined, waitedMs: number, wait: number) =>
    `${describeKeys(keys)} still busy after ${waitedMs} ms (wait=${wait})` +
    (busyKey !== undefined && keys.length > 1 ? `; "${busyKey}" was held by another owner` : '') +
    `; raise "wait" or use onBusy: 'skip'`,
  waitAborted: (keys: readonly string[]) => `Waiting for ${describeKeys(keys).toLowerCase()} was cancelled by the caller's signal`,

  lost: (keys: readonly string[], why: string) => `${describeKeys(keys)} was lost: ${why}`,
  lostOwner: 'its lease was taken over or deleted in Redis (another owner holds it, or it expired)',
  lostUnreachable: (ttl: number) => `Redis could not confirm a renewal before the lease (ttl=${ttl} ms) ran out`,
  lostMaxHold: (maxHold: number) =>
    `it was held for maxHold=${maxHold} ms, so renewal stopped; finish the work sooner or raise "maxHold"`,
  lostShutdown: 'the LockService shut down while it was held',
  lostReleased: 'it was already released',
  lostExpired: (ttl: number) =>
    `its lease (ttl=${ttl} ms) ran out with autoExtend off; call extend() sooner, raise "ttl" or turn autoExtend on`,

  keyNotString: (key: unknown) => `Lock key must be a non-empty string, got ${describeValue(key)}`,
  keyEmpty: 'Lock key must be a non-empty string, got ""',
  keyTooLong: (key: string, max: number) =>
    `Lock key is ${key.length} characters long (limit ${max}): ${describeValue(key)}; use a shorter key, e.g. a hash of it`,
  keyMalformedUnicode: (key: string) =>
    `Lock key ${describeValue(key)} contains a lone UTF-16 surrogate (half an emoji?), which Redis would store as U+FFFD and confuse with other keys; use well-formed text`,
  keysEmpty: 'At least one lock key is required, got an empty array',

  configOption: (option: string, value: unknown, rule: string) =>
    `Invalid LockModule option "${option}": ${describeValue(value)}; ${rule}`,
  configUnknownOption: (option: string, known: readonly string[]) =>
    `Unknown LockModule option "${option}"; known options are: ${known.join(', ')}`,
  configBackends: (given: readonly string[]) =>
    given.length === 0
      ? 'LockModule needs exactly one backend: give "redis" (URL, ioredis options or client), "redlock" or "store"; none was given'
      : `LockModule needs exactly one backend, but ${given.map((g) => `"${g}"`).join(' and ')} were given; keep one`,
  configIsGlobalInFactory:
    'LockModule option "isGlobal" was returned by an options factory, where it cannot take effect; pass it to forRootAsync({ isGlobal: true, ... }) itself',
  configFairMultiKey: (keys: readonly string[]) =>
    `Option "fair" works with one key per call, got ${keys.length} (${keys.map((k) => `"${k}"`).join(', ')}); take them one by one in a fixed order, or drop "fair"`,
  configNotWithRedlock: (option: string) =>
    `LockModule option "${option}" cannot be combined with "redlock" in this version; remove one of them`,
  configOnlyWithRedlock: (option: string) =>
    `LockModule option "${option}" applies to a Redlock quorum only: give "redlock" too, or remove it`,
  configNotWithStore: (option: string) =>
    `LockModule option "${option}" applies to Redis only, not to store: 'memory'; remove it`,
  configPermitsMismatch: (key: string, asked: number | undefined, inUse: number) =>
    `Lock "${key}" is held as a semaphore with permits: ${inUse}, but this call asked for permits: ${asked}; every holder of a key must use the same "permits"`,
  upgradeRefused: (key: string) =>
    `Lock "${key}" is held for reading in this call chain and cannot be upgraded to a write lock (that would deadlock); release the read lock first, or take the write lock from the start`,
  reentryRefused: (key: string, held: string, wanted: string) =>
    `Lock "${key}" is held as ${held === 'permits' ? 'a semaphore permit' : 'a read lock'} in this call chain, so asking for ${wanted === 'exclusive' ? 'the exclusive lock' : wanted === 'read' ? 'a read lock' : 'a permit'} here would wait for itself (or run beside the other holders); take the kind of lock you need from the start, or use another key`,
  configCallOption: (option: string, value: unknown, rule: string) =>
    `Invalid lock option "${option}": ${describeValue(value)}; ${rule}`,
  configUnknownCallOption: (option: string, known: readonly string[]) =>
    `Unknown lock option "${option}"; known options are: ${known.join(', ')}`,

  decoratorNotMethod: (where: string) => `@WithLock can only decorate methods, but ${where} is not a function`,
  decoratorOptions: (where: string, problem: string) => `@WithLock on ${where}: ${problem}`,
  tryAcquireWait: (wait: unknown) =>
    `tryAcquire never waits, but got wait: ${describeValue(wait)}; use acquire(keys, { wait }) to wait, or drop "wait"`,
  decoratorOnBusy: (where: string, value: unknown) =>
    `Invalid @WithLock option "onBusy" on ${where}: ${describeValue(value)}; expected 'throw' or 'skip'`,
  decoratorUnbound: (where: string) =>
    `@WithLock on ${where} has no LockService: import LockModule.forRoot(...) or LockModule.forRootAsync(...) in your application's root module. ` +
    '@WithLock works on controllers and singleton providers that Nest created (not request-scoped, transient or hand-made instances), once the app has initialised',
  decoratorSkipped: (where: string, keys: readonly string[]) =>
    `@WithLock skipped ${where}: ${describeKeys(keys).toLowerCase()} busy (onBusy: 'skip')`,
  decoratorUndeclaredObservable: (where: string) =>
    `@WithLock on ${where} returned an Observable, but the method's return type is not declared as Observable, ` +
    'so the lock could not be held for its lifetime; declare the return type (e.g. `: Observable<T>`) and the lock is taken on subscribe',
  // Leader election (LockService.lead, @Leader).
  leaderOption: (option: string, value: unknown, rule: string) => `Invalid leader option "${option}": ${describeValue(value)}; ${rule}`,
  leaderUnknownOption: (option: string, known: readonly string[]) =>
    `Unknown leader option "${option}"; known options are: ${known.join(', ')}`,
  leaderRun: (run: unknown) =>
    `lead(key, run, options?) expects run to be a function (leadership) => ..., got ${describeValue(run)}`,
  leaderDecoratorNotMethod: (where: string) => `@Leader can only decorate methods, but ${where} is not a function`,
  leaderDecorator: (where: string, problem: string) => `@Leader on ${where}: ${problem}`,
  leaderEnded: (key: string, why: string) => `Leadership of "${key}" ended: ${why}`,
  leaderWhy: {
    returned: 'run returned',
    threw: 'run threw',
    resign: 'resign() was called',
    stop: 'the campaign was stopped',
    term: 'its term ran out (option "term"); it was handed over',
    shutdown: 'the application is shutting down',
    expired: 'its lease ran out before it could be renewed (was the process paused?)',
  },
  leaderRunFailed: (key: string, retryMs: number) => `Leader of "${key}": run threw; campaigning again in ${retryMs} ms`,
  leaderCampaignFailed: (key: string, retryMs: number) => `Campaign for leader of "${key}" failed; retrying in ${retryMs} ms`,
  leaderStopSlow: (key: string, waitedMs: number) =>
    `Leader of "${key}": run had not returned ${waitedMs} ms after its signal aborted; stop() no longer waits for it. Make run honour leadership.signal`,
  unavailable: (keys: readonly string[], action: string) =>
    `Redis could not be reached in time to ${action} ${describeKeys(keys).toLowerCase()}; check the connection`,
  unavailableLate: (keys: readonly string[], ttl: number, tookMs: number) =>
    `${describeKeys(keys)} could not be taken: Redis answered ${tookMs} ms after the attempt was sent, after its ${ttl} ms lease had already run out; raise "ttl" well above your Redis round-trip time`,
  replicaShortfall: (keys: readonly string[], acknowledged: number, wanted: number, timeoutMs: number) =>
    `${describeKeys(keys)} was not taken: Redis granted it, but only ${acknowledged} of ${wanted} ` +
    `replica${wanted === 1 ? '' : 's'} acknowledged the write within replicaTimeout=${timeoutMs} ms ` +
    `(waitForReplicas: ${wanted}), so it was given back; check that enough replicas are connected and in sync ` +
    '(INFO replication), or lower "waitForReplicas" / raise "replicaTimeout"',
  unavailableIsLocked: (key: string) => `Redis could not be reached in time to check lock "${key}"; check the connection`,
  shutDown: 'LockService has shut down (application closing); no new locks can be taken',

  // Key templates of @WithLock. `where` is the rendered `templateWhere(...)` prefix.
  templateWhere: (template: string, className: string, methodName: string) =>
    `@WithLock(${template}) on ${className}.${methodName}`,
  templateNotString: (where: string, value: unknown) =>
    `${where}: a key template must be a string, an array of strings or a function, got ${describeValue(value)}`,
  templateArrayEmpty: (where: string) => `${where}: the array of key templates is empty; give at least one key`,
  templateEmpty: (where: string) => `${where}: a key template is empty; give a non-empty key such as 'order:<id>'`,
  templateUnclosed: (where: string, template: string, position: number) =>
    `${where}: '${template}' has a "<" at position ${position} without a closing ">"` +
    '; use the function form for keys that contain "<" or ">"',
  templateUnopened: (where: string, template: string, position: number) =>
    `${where}: '${template}' has a ">" at position ${position} without an opening "<"` +
    '; use the function form for keys that contain "<" or ">"',
  templateNested: (where: string, template: string, position: number) =>
    `${where}: '${template}' opens a placeholder inside another one at position ${position}; placeholders cannot be nested`,
  templateEmptyPlaceholder: (where: string, template: string, position: number) =>
    `${where}: '${template}' has an empty placeholder "<>" at position ${position}; write <name> or <0>`,
  templateBadSegment: (where: string, placeholder: string, segment: string) =>
    `${where}: placeholder ${placeholder} has an invalid part ${JSON.stringify(segment)}` +
    '; each dot-separated part must be an identifier or an integer, e.g. <dto.items.0.id>',
  templateForbiddenSegment: (where: string, placeholder: string, segment: string) =>
    `${where}: placeholder ${placeholder} uses "${segment}", which key templates never read`,
  templateUnknownParameter: (where: string, name: string, parameters: string) =>
    `${where}: no parameter named "${name}"; ${parameters}. Use a parameter name, or a position like <0>`,
  templateUnreadableParameters: (where: string, name: string) =>
    `${where}: cannot resolve <${name}> because the method's parameter names cannot be read from its source` +
    '; use a position like <0> instead',
  templateIndexOutOfRange: (where: string, placeholder: string, count: number) =>
    `${where}: placeholder ${placeholder} is past the method's ${count} declared parameter${count === 1 ? '' : 's'}` +
    ' and the method has no rest parameter',
  templateBrokenPath: (where: string, placeholder: string, segment: string, owner: string, value: unknown) =>
    `${where}: cannot resolve ${placeholder}: cannot read "${segment}" of <${owner}>, which is ${describeValue(value)}`,
  templateBadValue: (where: string, placeholder: string, value: unknown) =>
    `${where}: ${placeholder} resolved to ${describeValue(value)}` +
    '; a key part must be a non-empty string, a finite number, a bigint or a boolean',
  templateBadFunctionResult: (where: string, value: unknown, detail?: string) =>
    `${where}: the key function returned ${describeValue(value)}${detail ? ` (${detail})` : ''}` +
    '; it must return a non-empty string or a non-empty array of non-empty strings',
} as const;
