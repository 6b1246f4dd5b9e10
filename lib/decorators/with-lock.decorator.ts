import { Logger } from '@nestjs/common';
import { isObservable, Observable, type Subscription } from 'rxjs';
import { LockConfigError } from '../errors.js';
import type { AcquireOptions } from '../interfaces/lock-options.interface.js';
import { compileKeyTemplate, type KeyTemplate } from '../key-template.js';
import { boundLockService, markLockedMethodOwner } from '../lock-binding.js';
import { describeValue, MESSAGES } from '../lock.messages.js';
import { resolveCallOptions, type ResolvedModuleOptions } from '../lock-options.validation.js';
import type { HeldScope, LockService } from '../lock.service.js';

/** Options of `@WithLock`: the per-call lock options plus what to do when the lock is busy. */
export interface WithLockOptions extends Omit<AcquireOptions, 'signal'> {
  /**
   * `'throw'` (default): a lock still busy after `wait` rejects with `LockNotAcquiredError`
   * (HTTP 409). `'skip'`: the method body does not run and the call resolves to `undefined`.
   */
  onBusy?: 'throw' | 'skip';
}

/**
 * What a method under `@WithLock` must be declared to return, so that its type tells the truth:
 * the wrapper always returns a Promise (or, for a declared `Observable`, an Observable), and with
 * `onBusy: 'skip'` a skipped call resolves to (or emits) `undefined`.
 */
export type LockableReturn<R, O extends WithLockOptions> = [R] extends [PromiseLike<infer T> | Observable<infer T>]
  ? [O] extends [never]
    ? unknown
    : [O] extends [{ onBusy: 'skip' }]
    ? [undefined] extends [T]
      ? unknown
      : {
          "@WithLock with onBusy: 'skip' resolves a skipped call to undefined: declare the return type as Promise<T | undefined> (or Promise<void>)": never;
        }
    : unknown
  : {
      '@WithLock makes the method return a Promise: declare it async (or returning Promise<T> or Observable<T>)': never;
    };

const logger = new Logger('LockService');

/** Placeholder defaults, only to validate decorator options when the class is defined. */
const DEFINITION_TIME_DEFAULTS: ResolvedModuleOptions = {
  backend: { kind: 'redis', connection: 'redis://unused', replicaTimeout: 1 },
  prefix: 'unused',
  ttl: 1,
  wait: 0,
  autoExtend: true,
  maxHold: undefined,
  fair: false,
  pollInterval: 1,
  onEvent: undefined,
  openTelemetry: false,
};

/**
 * Runs the method while holding a lock whose key is resolved from its arguments:
 * `@WithLock('order:<id>')` (parameter by name), `'invoice:<0>'` (by position),
 * `'customer:<dto.customerId>'` (a path into an argument), an array of templates, or a function
 * of the method's arguments returning one key or several (all locked, all or nothing).
 *
 * The method becomes asynchronous; a method declared to return an `Observable` takes the lock on
 * subscribe and holds it until complete, error or unsubscribe. The types say so: decorating a method
 * whose return type is not a Promise (or Observable) is a compile error, and with
 * `onBusy: 'skip'` the resolved type must admit `undefined` (a skipped call resolves to it).
 */
export function WithLock<TArgs extends unknown[] = any[], O extends WithLockOptions = {}>(
  template: KeyTemplate<TArgs>,
  options: O = {} as O,
) {
  return function decorate<M extends (...args: [...TArgs, ...any[]]) => any>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<M> & LockableReturn<ReturnType<M>, O>,
  ): void {
    const className = typeof target === 'function' ? target.name : target.constructor.name;
    const methodName = String(propertyKey);
    const where = `${className}.${methodName}`;
    const original = descriptor.value;
    if (typeof original !== 'function') throw new LockConfigError(MESSAGES.decoratorNotMethod(where));

    // Everything that can be checked without an app fails here, when the class is defined.
    const keys = compileKeyTemplate(template as KeyTemplate, original, { className, methodName });
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new LockConfigError(MESSAGES.decoratorOptions(where, `options must be an object, got ${describeValue(options)}`));
    }
    const { onBusy = 'throw', ...lockOptions } = options;
    if (onBusy !== 'throw' && onBusy !== 'skip') throw new LockConfigError(MESSAGES.decoratorOnBusy(where, onBusy));
    if ('signal' in lockOptions) {
      throw new LockConfigError(MESSAGES.decoratorOptions(where, 'a "signal" would be shared by every call; cancel with the service API instead'));
    }
    try {
      resolveCallOptions(lockOptions as AcquireOptions, DEFINITION_TIME_DEFAULTS);
    } catch (error) {
      throw error instanceof LockConfigError ? new LockConfigError(MESSAGES.decoratorOptions(where, error.message)) : error;
    }
    const returnsObservable = declaresObservable(Reflect.getMetadata?.('design:returntype', target, propertyKey));

    /** Takes the lock (or null when skipped); resolving the key is part of it, so it never throws synchronously. */
    const hold = async (self: unknown, args: unknown[]): Promise<HeldScope | null> => {
      const locks: LockService | undefined = boundLockService(self);
      if (!locks) throw new LockConfigError(MESSAGES.decoratorUnbound(where));
      const resolved = keys.resolve(args);
      const held = await locks.hold(resolved, lockOptions, onBusy === 'skip');
      if (held === null) logger.debug(MESSAGES.decoratorSkipped(where, resolved));
      return held;
    };

    const wrapped = returnsObservable
      ? function (this: unknown, ...args: unknown[]): Observable<unknown> {
          return lockedObservable(() => hold(this, args), (held) => held.run(() => original.apply(this, args as never)));
        }
      : async function (this: unknown, ...args: unknown[]): Promise<unknown> {
          const held = await hold(this, args);
          if (held === null) return undefined;
          try {
            const result: unknown = await held.run(() => original.apply(this, args as never));
            if (isObservable(result)) throw new LockConfigError(MESSAGES.decoratorUndeclaredObservable(where));
            return result;
          } finally {
            await held.lock.release();
          }
        };

    copyFunctionIdentity(original, wrapped);
    descriptor.value = wrapped as unknown as M;
    markLockedMethodOwner(typeof target === 'function' ? target.prototype : target);
  };
}

/**
 * An Observable that takes the lock on subscribe, subscribes to the method's Observable while
 * holding it, and releases on complete, error or unsubscribe.
 */
function lockedObservable(
  hold: () => Promise<HeldScope | null>,
  run: (held: HeldScope) => unknown,
): Observable<unknown> {
  return new Observable<unknown>((subscriber) => {
    let held: HeldScope | null = null;
    let inner: Subscription | undefined;
    let closed = false;
    hold().then(
      (taken) => {
        held = taken;
        if (closed) {
          void held?.lock.release();
          return;
        }
        if (held === null) {
          subscriber.next(undefined); // skipped: same as a promise method resolving to undefined
          subscriber.complete();
          return;
        }
        let source: unknown;
        try {
          source = run(held);
        } catch (error) {
          // The method threw before returning its Observable: error the stream (its teardown releases).
          subscriber.error(error);
          return;
        }
        if (!isObservable(source)) {
          subscriber.next(source);
          subscriber.complete();
          return;
        }
        inner = source.subscribe(subscriber);
      },
      (error: unknown) => subscriber.error(error),
    );
    return () => {
      closed = true;
      inner?.unsubscribe();
      void held?.lock.release();
    };
  });
}

/** Keeps route/Swagger/@Cron/@MessagePattern metadata, `name` and `length` on the wrapper. */
function copyFunctionIdentity(original: Function, wrapped: Function): void {
  Object.defineProperty(wrapped, 'name', { value: original.name, configurable: true });
  Object.defineProperty(wrapped, 'length', { value: original.length, configurable: true });
  if (typeof Reflect.getMetadataKeys !== 'function') return;
  for (const key of Reflect.getOwnMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), wrapped);
  }
}

/** Recognises rxjs' Observable even from another copy of rxjs. */
function declaresObservable(type: unknown): boolean {
  if (typeof type !== 'function') return false;
  if (type === Observable) return true;
  const proto = (type as { prototype?: { subscribe?: unknown; pipe?: unknown } }).prototype;
  return type.name === 'Observable' && typeof proto?.subscribe === 'function' && typeof proto?.pipe === 'function';
}
