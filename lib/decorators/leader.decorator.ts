import { LockConfigError, LockKeyError } from '../errors.js';
import type { LeadOptions, Leadership } from '../interfaces/leadership.interface.js';
import { resolveLeadOptions } from '../leader/leader-election.js';
import { assertValidKey } from '../lock-keys.js';
import { MESSAGES } from '../lock.messages.js';

/** A `@Leader` method, as recorded on its class. */
export interface LeaderMethod {
  method: string | symbol;
  key: string;
  options: LeadOptions;
}

/** `@Leader` methods per prototype that declares them. */
const leaderMethods = new WeakMap<object, LeaderMethod[]>();

/**
 * Runs the method on the one instance elected leader for `key`, across every app sharing the lock
 * store: LockModule campaigns for it once the application has bootstrapped, calls the method with
 * the `Leadership` when elected, and campaigns again when the method returns or throws, or when
 * leadership is lost, until shutdown (which resigns, so another instance takes over at once).
 * Options: `ttl` (takeover time after a leader dies) and `term` (voluntary hand-over).
 *
 * The decorator does not change the method: calling it yourself runs it without any election.
 * Works on singleton providers and controllers that Nest creates.
 */
export function Leader(key: string, options: LeadOptions = {}) {
  return function decorate<M extends (leadership: Leadership) => unknown>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<M>,
  ): void {
    const className = typeof target === 'function' ? target.name : target.constructor.name;
    const where = `${className}.${String(propertyKey)}`;
    if (typeof descriptor.value !== 'function') throw new LockConfigError(MESSAGES.leaderDecoratorNotMethod(where));
    if (typeof target === 'function') throw new LockConfigError(MESSAGES.leaderDecorator(where, 'static methods cannot lead; use an instance method'));
    try {
      assertValidKey(key);
    } catch (error) {
      throw error instanceof LockKeyError ? new LockKeyError(MESSAGES.leaderDecorator(where, error.message)) : error;
    }
    try {
      resolveLeadOptions(options);
    } catch (error) {
      throw error instanceof LockConfigError ? new LockConfigError(MESSAGES.leaderDecorator(where, error.message)) : error;
    }
    const list = leaderMethods.get(target) ?? [];
    list.push({ method: propertyKey, key, options: { ...options } });
    leaderMethods.set(target, list);
  };
}

/** The `@Leader` methods of an instance's class and its parents (a method overridden in a subclass counts once). */
export function leaderMethodsOf(instance: object): LeaderMethod[] {
  const found: LeaderMethod[] = [];
  const seen = new Set<string | symbol>();
  for (let proto = Object.getPrototypeOf(instance); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const entry of leaderMethods.get(proto) ?? []) {
      if (seen.has(entry.method)) continue;
      seen.add(entry.method);
      found.push(entry);
    }
  }
  return found;
}
