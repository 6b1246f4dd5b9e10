import { LockKeyError } from '../lib/errors.js';
import { compileKeyTemplate, parameterNamesOf, type KeyTemplate, type MethodIdentity } from '../lib/key-template.js';

/* eslint-disable @typescript-eslint/no-unused-vars */

// A stand-in for Nest's @Param()/@Body(): parameter decorators are compiled away from the method's source.
const Param = (_name?: string): ParameterDecorator => () => undefined;

class Dto {
  constructor(
    readonly customer: { id: string; tenant: string },
    readonly items: Array<{ id: number }>,
  ) {}
  /** Inherited (prototype) getter: placeholders read inherited properties too. */
  get upper(): string {
    return this.customer.id.toUpperCase();
  }
}

class OrdersController {
  pay(@Param('id') id: string, @Param() dto: Dto) {}
  payMany(id: string, dto: Dto, ...extra: unknown[]) {}
  noParameters() {}
  destructured({ id }: { id: string }, [first]: string[], last: string) {}
  ùnïcødé(ñame: string, $dollar: string, _under: string) {}
}

const where: MethodIdentity = { className: 'OrdersController', methodName: 'pay' };
const pay = OrdersController.prototype.pay;
const payMany = OrdersController.prototype.payMany;
const dto = new Dto({ id: 'c-7', tenant: 'acme' }, [{ id: 11 }, { id: 12 }]);

/** Compiles against `method` and resolves with `args` in one go. */
function keys(template: KeyTemplate, args: readonly unknown[], method: Function = payMany): string[] {
  return compileKeyTemplate(template, method, where).resolve(args);
}

/** Asserts a LockKeyError whose message contains every fragment. */
function expectKeyError(run: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(LockKeyError);
  for (const fragment of fragments) expect((caught as Error).message).toContain(fragment);
}

// -------------------------------------------------------------------------------------------------------
// parameterNamesOf
// -------------------------------------------------------------------------------------------------------

class Shapes {
  plain(a: unknown, b: unknown) {}
  async asyncMethod(a: unknown) {}
  *generator(a: unknown) {}
  async *asyncGenerator(a: unknown, b: unknown) {}
  ['weird name'](a: unknown) {}
  'quoted (name,'(a: unknown, b: unknown) {}
  [`computed${'(x, y)'}`](a: unknown) {}
  123(a: unknown) {}
  static staticMethod(a: unknown, b: unknown) {}
  set setter(value: unknown) {}
  typed(a: string, b?: number, c: (x: number, y: number) => void = () => {}) {}
  objectDefault(a = { x: 1, y: [2, 3] }, b = 0) {}
  arrowDefault(a = (x: number, y: number) => x, b = 0) {}
  arrowBodyDefault(a = () => { return { x: ')' }; }, b = 0) {}
  functionDefault(a = function (x: number, y: number) { return x + y; }, b = 0) {}
  stringDefaults(a = 'a,b', b = "(,", c = 'it\'s, (', d = 0) {}
  templateDefaults(a = `x${1}`, b = `${`(${'{'}`},)`, c = `\`,(`, d = 0) {}
  regexDefaults(a = /[(,)]/g, b = /,\/\(/, c = /[/(]/, d = 0) {}
  divisionDefaults(a = 10 / 2, b = Math.PI / 2 / 1, c = (1 + 1) / 2, d = [4][0]! / 2, e = 0) {}
  destructured({ id, name }: { id: string; name: string }, [x, y]: number[], last: unknown) {}
  destructuredDefaults({ id = ',', name = { a: 1 } } = { id: '' }, [x = Math.max(1, 2)] = [], last = 0) {}
  rest(first: unknown, ...others: unknown[]) {}
  restOnly(...xs: unknown[]) {}
  destructuredRest(a: unknown, ...[b, c]: unknown[]) {}
  blockComments(a /* x, y */: unknown, /* (z, */ b: unknown, c /* ) */ = /* , */ 1) {}
  lineComments(
    a: unknown, // first, (second
    // b is the second: )
    b: unknown,
  ) {}
  trailingComma(a: unknown, b: unknown,) {}
  none() {}
  decorated(@Param('id') id: string, @Param() body: object) {}
  #secret(a: unknown, b: unknown) {}
  secretRef() {
    return this.#secret;
  }
}
const proto = Shapes.prototype as unknown as Record<string, Function>;
const setter = Object.getOwnPropertyDescriptor(Shapes.prototype, 'setter')!.set!;

describe('parameterNamesOf', () => {
  it.each<[string, Function, Array<string | undefined>]>([
    ['a class method', proto.plain!, ['a', 'b']],
    ['an async method', proto.asyncMethod!, ['a']],
    ['a generator method', proto.generator!, ['a']],
    ['an async generator method', proto.asyncGenerator!, ['a', 'b']],
    ['a computed name', proto['weird name']!, ['a']],
    ['a quoted name with ( and ,', proto['quoted (name,']!, ['a', 'b']],
    ['a computed template name', proto['computed(x, y)']!, ['a']],
    ['a numeric name', proto['123']!, ['a']],
    ['a static method', Shapes.staticMethod, ['a', 'b']],
    ['a setter', setter, ['value']],
    ['a private method', new Shapes().secretRef(), ['a', 'b']],
    ['TypeScript types (stripped)', proto.typed!, ['a', 'b', 'c']],
    ['an object default', proto.objectDefault!, ['a', 'b']],
    ['an arrow-function default', proto.arrowDefault!, ['a', 'b']],
    ['an arrow default with a block body', proto.arrowBodyDefault!, ['a', 'b']],
    ['a function-expression default', proto.functionDefault!, ['a', 'b']],
    ['string defaults with , ( and escapes', proto.stringDefaults!, ['a', 'b', 'c', 'd']],
    ['template-literal defaults with nested ${}', proto.templateDefaults!, ['a', 'b', 'c', 'd']],
    ['regular-expression defaults', proto.regexDefaults!, ['a', 'b', 'c', 'd']],
    ['divisions (not regular expressions)', proto.divisionDefaults!, ['a', 'b', 'c', 'd', 'e']],
    ['destructured parameters', proto.destructured!, [undefined, undefined, 'last']],
    ['destructured parameters with defaults', proto.destructuredDefaults!, [undefined, undefined, 'last']],
    ['a rest parameter', proto.rest!, ['first', 'others']],
    ['only a rest parameter', proto.restOnly!, ['xs']],
    ['a destructured rest parameter', proto.destructuredRest!, ['a', undefined]],
    ['block comments between parameters', proto.blockComments!, ['a', 'b', 'c']],
    ['line comments between parameters', proto.lineComments!, ['a', 'b']],
    ['a trailing comma (TypeScript drops it from the emitted source)', proto.trailingComma!, ['a', 'b']],
    ['no parameters', proto.none!, []],
    ['parameter decorators (Nest @Param/@Body)', proto.decorated!, ['id', 'body']],
    ['unicode and $/_ identifiers', OrdersController.prototype.ùnïcødé, ['ñame', '$dollar', '_under']],
    ['a function expression', function (a: unknown, b: unknown) {}, ['a', 'b']],
    ['a named function expression', function named(a: unknown) {}, ['a']],
    ['an async function expression', async function (a: unknown) {}, ['a']],
    ['a generator function expression', function* (a: unknown, b: unknown) {}, ['a', 'b']],
    ['an arrow function', (a: unknown, b: unknown) => a, ['a', 'b']],
    ['an arrow function without parentheses', ((a) => a) as (a: unknown) => unknown, ['a']],
    ['an async arrow function', async (a: unknown) => a, ['a']],
    ['an async arrow function without parentheses', (async (a) => a) as (a: unknown) => unknown, ['a']],
    ['an arrow whose body has parentheses', ((a) => Math.max(a, 1)) as (a: number) => unknown, ['a']],
    ['a bound function (source hidden)', proto.plain!.bind(null), []],
    ['a built-in function', Math.max, []],
  ])('reads %s', (_what, fn, expected) => {
    expect(parameterNamesOf(fn)).toEqual(expected);
  });
});

// -------------------------------------------------------------------------------------------------------
// Resolving placeholders
// -------------------------------------------------------------------------------------------------------

describe('compileKeyTemplate: placeholders', () => {
  const args = ['42', dto, 'x0', { code: 'x1' }];

  it.each<[string, string]>([
    ['order:<id>', 'order:42'],
    ['order:<0>', 'order:42'],
    ['customer:<dto.customer.id>', 'customer:c-7'],
    ['customer:<1.customer.id>', 'customer:c-7'],
    ['item:<dto.items.0.id>', 'item:11'],
    ['item:<1.items.1.id>', 'item:12'],
    ['count:<dto.items.length>', 'count:2'],
    ['upper:<dto.upper>', 'upper:C-7'],
    ['{tenant}:order:<id>', '{tenant}:order:42'],
    ['{<dto.customer.tenant>}:order:<id>', '{acme}:order:42'],
    ['a{b}c{}', 'a{b}c{}'],
    ['global-lock', 'global-lock'],
    ['<id><0>', '4242'],
    ['<id>', '42'],
    ['<id>:<dto.customer.id>:<extra.0>', '42:c-7:x0'],
    ['rest:<extra.0>:<extra.1.code>:<extra.length>', 'rest:x0:x1:2'],
    ['rest:<2>:<3.code>', 'rest:x0:x1'],
  ])('%s → %s', (template, expected) => {
    expect(keys(template, args)).toEqual([expected]);
  });

  it('resolves an index past the declared parameters to that argument when there is a rest parameter', () => {
    expect(keys('<5>', ['a', dto, 'c', 'd', 'e', 'f'])).toEqual(['f']);
  });

  it('reads properties of a function-valued argument', () => {
    function handler() {}
    expect(keys('<extra.0.name>', ['1', dto, handler])).toEqual(['handler']);
  });

  it('uses unicode parameter names', () => {
    const method = OrdersController.prototype.ùnïcødé;
    expect(keys('<ñame>/<$dollar>/<_under>', ['a', 'b', 'c'], method)).toEqual(['a/b/c']);
  });

  it('resolves positions of destructured parameters', () => {
    const method = OrdersController.prototype.destructured;
    expect(keys('<0.id>:<1.0>:<last>', [{ id: 'i' }, ['f'], 'l'], method)).toEqual(['i:f:l']);
  });

  it.each<[unknown, string]>([
    [0, '0'],
    [-1.5, '-1.5'],
    [1e21, '1e+21'],
    [-0, '0'],
    [10n, '10'],
    [-(2n ** 70n), '-1180591620717411303424'],
    [true, 'true'],
    [false, 'false'],
    ['  ', '  '],
    ['${process.exit()}<x>', '${process.exit()}<x>'],
  ])('stringifies %p as %p', (value, expected) => {
    expect(keys('v:<id>', [value, dto])).toEqual([`v:${expected}`]);
  });

  it('reads the arguments of each call afresh', () => {
    const compiled = compileKeyTemplate('order:<id>', pay, where);
    expect(compiled.resolve(['1', dto])).toEqual(['order:1']);
    expect(compiled.resolve(['2', dto])).toEqual(['order:2']);
  });

  it('does not need readable parameter names for positions or literal keys', () => {
    const bound = pay.bind(null);
    expect(keys('order:<0>:<1.customer.id>', ['1', dto], bound)).toEqual(['order:1:c-7']);
    expect(keys('fixed', [], bound)).toEqual(['fixed']);
  });
});

describe('compileKeyTemplate: arrays', () => {
  it('compiles each element and resolves one key per element, in order', () => {
    const compiled = compileKeyTemplate(['order:<id>', '{<dto.customer.tenant>}', 'global'], pay, where);
    expect(compiled.resolve(['42', dto])).toEqual(['order:42', '{acme}', 'global']);
  });

  it('keeps duplicates (deduplication is up to the caller)', () => {
    expect(keys(['a:<id>', 'a:<0>'], ['1', dto])).toEqual(['a:1', 'a:1']);
  });

  it('returns a fresh array on each call', () => {
    const compiled = compileKeyTemplate(['a', 'b'], pay, where);
    const first = compiled.resolve([]);
    first.push('mutated');
    expect(compiled.resolve([])).toEqual(['a', 'b']);
  });

  it('reports the failing element at compile time', () => {
    expectKeyError(() => compileKeyTemplate(['ok:<id>', 'bad:<oid>'], pay, where), `['ok:<id>', 'bad:<oid>']`, 'no parameter named "oid"');
  });

  it('reports the failing element at call time', () => {
    const compiled = compileKeyTemplate(['ok:<id>', 'bad:<dto.missing>'], pay, where);
    expectKeyError(() => compiled.resolve(['1', dto]), '<dto.missing> resolved to undefined');
  });
});

describe('compileKeyTemplate: function form', () => {
  it('calls the function with the arguments and accepts a string', () => {
    const calls: unknown[][] = [];
    const keyFor = (...args: [string, Dto]) => {
      calls.push(args);
      return `order:${args[0]}:${args[1].customer.tenant}`;
    };
    const compiled = compileKeyTemplate(keyFor, pay, where);
    expect(compiled.resolve(['42', dto])).toEqual(['order:42:acme']);
    expect(calls).toEqual([['42', dto]]);
  });

  it('accepts a non-empty array of non-empty strings and copies it', () => {
    const returned = ['a', 'b'];
    const compiled = compileKeyTemplate(() => returned, pay, where);
    const resolved = compiled.resolve([]);
    expect(resolved).toEqual(['a', 'b']);
    expect(resolved).not.toBe(returned);
  });

  it('is typed against the method parameters', () => {
    const template: KeyTemplate<[id: string, dto: Dto]> = (id, body) => [`order:${id}`, body.customer.id];
    expect(compileKeyTemplate(template as KeyTemplate, pay, where).resolve(['1', dto])).toEqual(['order:1', 'c-7']);
  });

  it('lets an error thrown by the function propagate unchanged', () => {
    const boom = new TypeError('boom');
    const compiled = compileKeyTemplate(() => {
      throw boom;
    }, pay, where);
    expect(() => compiled.resolve([])).toThrow(boom);
  });

  it('does not parse the method (works with unreadable sources)', () => {
    expect(compileKeyTemplate(() => 'k', Math.max, where).resolve([])).toEqual(['k']);
  });

  it.each<[string, unknown, string]>([
    ['an empty string', '', 'returned ""'],
    ['undefined', undefined, 'returned undefined'],
    ['null', null, 'returned null'],
    ['a number', 42, 'returned 42'],
    ['an object', { key: 'a' }, 'returned object'],
    ['an empty array', [], 'returned array(0) (the array is empty)'],
    ['an array with an empty string', ['a', ''], 'element 1 is ""'],
    ['an array with a number', [1], 'element 0 is 1'],
    ['an array with undefined', ['a', undefined], 'element 1 is undefined'],
  ])('rejects %s', (_what, returned, fragment) => {
    const keyFor = () => returned as string;
    const compiled = compileKeyTemplate(keyFor, pay, where);
    expectKeyError(() => compiled.resolve([]), '@WithLock(function keyFor) on OrdersController.pay', fragment);
  });
});

// -------------------------------------------------------------------------------------------------------
// Errors
// -------------------------------------------------------------------------------------------------------

describe('compileKeyTemplate: compile-time errors', () => {
  it('names class, method, template and the parameters for an unknown parameter', () => {
    expect(() => compileKeyTemplate('order:<oid>', pay, where)).toThrow(LockKeyError);
    expect(() => compileKeyTemplate('order:<oid>', pay, where)).toThrow(
      `@WithLock('order:<oid>') on OrdersController.pay: no parameter named "oid"; parameters are (id, dto). ` +
        'Use a parameter name, or a position like <0>',
    );
  });

  it.each<[string, KeyTemplate, Function, string[]]>([
    // Malformed templates.
    ['an empty template', '', pay, ['a key template is empty']],
    ['an empty template in an array', ['a', ''], pay, ['a key template is empty']],
    ['an empty placeholder', 'order:<>', pay, ['empty placeholder "<>" at position 6']],
    ['an unclosed placeholder', 'order:<id', pay, ['"<" at position 6 without a closing ">"']],
    ['an unopened placeholder', 'order:id>', pay, ['">" at position 8 without an opening "<"']],
    ['a stray > after a placeholder', 'order:<id>>', pay, ['">" at position 10 without an opening "<"']],
    ['a nested placeholder', 'order:<<id>>', pay, ['inside another one at position 7']],
    ['a nested placeholder inside a path', '<dto.<id>>', pay, ['inside another one at position 5']],
    ['a space in a placeholder', '<a b>', pay, ['placeholder <a b> has an invalid part "a b"']],
    ['padding in a placeholder', '< id >', pay, ['invalid part " id "']],
    ['an empty segment', '<dto..id>', pay, ['placeholder <dto..id> has an invalid part ""']],
    ['a trailing dot', '<dto.>', pay, ['placeholder <dto.> has an invalid part ""']],
    ['a leading dot', '<.id>', pay, ['invalid part ""']],
    ['an expression', '<id+1>', pay, ['invalid part "id+1"']],
    ['a call', '<dto.toString()>', pay, ['invalid part "toString()"']],
    ['a bracket access', '<dto[0]>', pay, ['invalid part "dto[0]"']],
    ['a negative index', '<-1>', pay, ['invalid part "-1"']],
    ['a non-canonical index', '<01>', pay, ['invalid part "01"']],
    ['a segment starting with a digit', '<dto.1a>', pay, ['invalid part "1a"']],
    // Parameters.
    ['an unknown parameter with a path', '<order.id>', pay, ['no parameter named "order"', 'parameters are (id, dto)']],
    ['a parameter of a method without any', '<id>', OrdersController.prototype.noParameters, ['the method declares no parameters']],
    [
      'a name that only exists inside a destructuring pattern',
      '<id>',
      OrdersController.prototype.destructured,
      ['no parameter named "id"', 'parameters are (<0> destructured, <1> destructured, last)'],
    ],
    ['an unknown parameter shows the rest parameter', '<nope>', payMany, ['parameters are (id, dto, ...extra)']],
    ['a position past the parameters without rest', 'order:<2>', pay, ["<2> is past the method's 2 declared parameters", 'no rest parameter']],
    ['a position on a method without parameters', '<0>', OrdersController.prototype.noParameters, ["past the method's 0 declared parameters"]],
    ['a name when the parameter names are unreadable', '<id>', pay.bind(null), ['cannot resolve <id>', 'use a position like <0>']],
    // Template types (JavaScript callers).
    ['an empty array', [], pay, ['the array of key templates is empty']],
    ['a number', 42 as unknown as string, pay, ['must be a string, an array of strings or a function, got 42']],
    ['a non-string element', ['a', 7] as unknown as string[], pay, ['got 7']],
    ['null', null as unknown as string, pay, ['got null']],
  ])('rejects %s', (_what, template, method, fragments) => {
    expect(() => compileKeyTemplate(template, method, where)).toThrow(LockKeyError);
    expectKeyError(() => compileKeyTemplate(template, method, where), 'on OrdersController.pay', ...fragments);
  });

  it('names the template, class and method in malformed-template messages', () => {
    expectKeyError(
      () => compileKeyTemplate('a:<x', pay, { className: 'Billing', methodName: 'charge' }),
      `@WithLock('a:<x') on Billing.charge:`,
    );
  });

  it.each<string>([
    '<constructor>',
    '<id.constructor>',
    '<id.constructor.name>',
    '<dto.__proto__>',
    '<dto.__proto__.upper>',
    '<0.prototype>',
    '<dto.customer.constructor.constructor>',
    '<extra.0.prototype.x>',
  ])('rejects the prototype-walking path %s', (template) => {
    const forbidden = /constructor|__proto__|prototype/.exec(template)![0];
    expectKeyError(() => compileKeyTemplate(template, payMany, where), `placeholder ${template} uses "${forbidden}"`);
  });
});

describe('compileKeyTemplate: call-time errors', () => {
  class Thing {}
  const symbol = Symbol('s');

  it.each<[string, unknown, string]>([
    ['undefined', undefined, 'resolved to undefined'],
    ['null', null, 'resolved to null'],
    ['an empty string', '', 'resolved to ""'],
    ['NaN', NaN, 'resolved to NaN'],
    ['Infinity', Infinity, 'resolved to Infinity'],
    ['-Infinity', -Infinity, 'resolved to -Infinity'],
    ['a plain object', { id: 1 }, 'resolved to object'],
    ['an array', ['a'], 'resolved to array(1)'],
    ['a Date', new Date(0), 'resolved to Date instance'],
    ['a class instance', new Thing(), 'resolved to Thing instance'],
    ['a function', function keyPart() {}, 'resolved to function keyPart'],
    ['a symbol', symbol, 'resolved to Symbol(s)'],
  ])('rejects a value that is %s', (_what, value) => {
    const compiled = compileKeyTemplate('order:<id>', pay, where);
    expect(() => compiled.resolve([value, dto])).toThrow(LockKeyError);
    expectKeyError(
      () => compiled.resolve([value, dto]),
      `@WithLock('order:<id>') on OrdersController.pay: <id>`,
      'a key part must be a non-empty string, a finite number, a bigint or a boolean',
    );
  });

  it.each<[string, unknown, string]>([
    ['undefined', undefined, 'resolved to undefined'],
    ['null', null, 'resolved to null'],
    ['an empty string', '', 'resolved to ""'],
    ['NaN', NaN, 'resolved to NaN'],
    ['an object', {}, 'resolved to object'],
    ['an array', [], 'resolved to array(0)'],
    ['a Date', new Date(0), 'resolved to Date instance'],
    ['a function', () => 1, 'resolved to function'],
    ['a symbol', Symbol('s'), 'resolved to Symbol(s)'],
  ])('describes a value that is %s', (_what, value, fragment) => {
    expectKeyError(() => keys('<id>', [value, dto], pay), fragment);
  });

  it('rejects the whole rest array named as a placeholder', () => {
    expectKeyError(() => keys('<extra>', ['1', dto, 'a']), '<extra> resolved to array(1)');
  });

  it('rejects a missing argument', () => {
    expectKeyError(() => keys('order:<dto.customer.id>', ['1']), 'cannot read "customer" of <dto>, which is undefined');
  });

  it('rejects a missing argument past a rest position', () => {
    expectKeyError(() => keys('<7>', ['1', dto]), '<7> resolved to undefined');
  });

  it.each<[string, unknown[], string]>([
    ['<dto.customer.id>', ['1', null], 'cannot read "customer" of <dto>, which is null'],
    ['<dto.missing.id>', ['1', dto], 'cannot read "id" of <dto.missing>, which is undefined'],
    ['<dto.items.5.id>', ['1', dto], 'cannot read "id" of <dto.items.5>, which is undefined'],
    ['<id.length>', ['abc', dto], 'cannot read "length" of <id>, which is "abc"'],
    ['<1.customer.id.x>', ['1', dto], 'cannot read "x" of <1.customer.id>, which is "c-7"'],
    ['<id.x>', [5, dto], 'cannot read "x" of <id>, which is 5'],
  ])('rejects a path through a non-object: %s', (template, args, fragment) => {
    const compiled = compileKeyTemplate(template, pay, where);
    expect(() => compiled.resolve(args)).toThrow(LockKeyError);
    expectKeyError(() => compiled.resolve(args), `@WithLock('${template}') on OrdersController.pay: cannot resolve ${template}`, fragment);
  });

  it('rejects a missing property at the end of a path', () => {
    expectKeyError(() => keys('<dto.customer.nope>', ['1', dto]), '<dto.customer.nope> resolved to undefined');
  });
});
