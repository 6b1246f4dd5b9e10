/**
 * Key templates of `@WithLock(...)`: `'order:<id>'`, `'{tenant}:<dto.items.0.id>'`, arrays of those, or a
 * function of the method's arguments. A template is compiled once, when the decorator runs at class
 * definition time, so mistakes (typos in parameter names, malformed placeholders) fail at startup rather
 * than on the first request; `resolve()` then only reads arguments on each call.
 *
 * Nothing here evaluates user text as code: parameter names are read from the method's source with a small
 * scanner, and placeholder paths are walked with plain property reads.
 */
import { LockKeyError } from './errors.js';
import { describeValue, MESSAGES } from './lock.messages.js';
// ---------------------------------------------------------------------------------------------------------
// Compiling
// ---------------------------------------------------------------------------------------------------------
/**
 * Parses `template` for `method` and returns its resolver. Throws {@link LockKeyError} for a malformed
 * template or a placeholder that names no parameter of `method`; `where` only serves the messages.
 */
export function compileKeyTemplate(template, method, where) {
    const at = MESSAGES.templateWhere(renderTemplate(template), where.className, where.methodName);
    if (typeof template === 'function')
        return compileKeyFunction(template, at);
    const templates = typeof template === 'string' ? [template] : template;
    if (!Array.isArray(templates))
        throw new LockKeyError(MESSAGES.templateNotString(at, template));
    if (templates.length === 0)
        throw new LockKeyError(MESSAGES.templateArrayEmpty(at));
    // The method's source is only scanned when some placeholder needs its parameter list.
    let parameters = null;
    const parametersOf = () => (parameters === null ? (parameters = readParameters(method)) : parameters);
    const resolvers = templates.map((text) => {
        if (typeof text !== 'string')
            throw new LockKeyError(MESSAGES.templateNotString(at, text));
        return compileStringTemplate(text, parametersOf, at);
    });
    return { resolve: (args) => resolvers.map((resolveOne) => resolveOne(args)) };
}
/** How a template appears in messages: `'order:<id>'`, `['a:<x>', 'b']`, `function keyFor`. */
function renderTemplate(template) {
    if (typeof template === 'string')
        return `'${template}'`;
    if (Array.isArray(template))
        return `[${template.map(renderTemplate).join(', ')}]`;
    return describeValue(template);
}
const IDENTIFIER_SEGMENT = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200C\u200D]*$/u;
/** Canonical non-negative integers only: `<01>` would read property "01", which is not element 1. */
const INTEGER_SEGMENT = /^(?:0|[1-9][0-9]*)$/;
/** Walking into these could reach (and leak in a key) the prototype chain or class internals. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor']);
function compileStringTemplate(text, parametersOf, at) {
    const parts = parseTemplate(text, at).map((part) => typeof part === 'string' ? part : bindPlaceholder(checkSegments(part, at), parametersOf(), at));
    if (parts.every((part) => typeof part === 'string')) {
        const key = parts.join('');
        return () => key;
    }
    return (args) => parts.map((part) => (typeof part === 'string' ? part : resolvePlaceholder(part, args, at))).join('');
}
/**
 * Splits a template into literal text and placeholders. Only `<` and `>` are special; everything else,
 * including `{…}` (Redis Cluster hash tags), is literal. There is no escape: keys containing `<` or `>`
 * need the function form.
 */
function parseTemplate(text, at) {
    if (text === '')
        throw new LockKeyError(MESSAGES.templateEmpty(at));
    const parts = [];
    let literalStart = 0;
    for (let i = 0; i < text.length; i++) {
        if (text[i] === '>')
            throw new LockKeyError(MESSAGES.templateUnopened(at, text, i));
        if (text[i] !== '<')
            continue;
        const close = text.indexOf('>', i + 1);
        const nestedOpen = text.indexOf('<', i + 1);
        if (nestedOpen !== -1 && (close === -1 || nestedOpen < close)) {
            throw new LockKeyError(MESSAGES.templateNested(at, text, nestedOpen));
        }
        if (close === -1)
            throw new LockKeyError(MESSAGES.templateUnclosed(at, text, i));
        if (close === i + 1)
            throw new LockKeyError(MESSAGES.templateEmptyPlaceholder(at, text, i));
        if (i > literalStart)
            parts.push(text.slice(literalStart, i));
        parts.push({ text: text.slice(i, close + 1), segments: text.slice(i + 1, close).split('.') });
        i = close;
        literalStart = close + 1;
    }
    if (literalStart < text.length)
        parts.push(text.slice(literalStart));
    return parts;
}
function checkSegments(placeholder, at) {
    for (const segment of placeholder.segments) {
        if (!IDENTIFIER_SEGMENT.test(segment) && !INTEGER_SEGMENT.test(segment)) {
            throw new LockKeyError(MESSAGES.templateBadSegment(at, placeholder.text, segment));
        }
        if (FORBIDDEN_SEGMENTS.has(segment)) {
            throw new LockKeyError(MESSAGES.templateForbiddenSegment(at, placeholder.text, segment));
        }
    }
    return placeholder;
}
/**
 * Resolves the first segment against the parameter list: `<2>` is the third argument, `<dto>` the argument
 * at dto's position. A rest parameter `...xs` named as `<xs>` is the array of the remaining arguments, as
 * inside the method, while a position `<3>` at or past it is simply the fourth argument.
 */
function bindPlaceholder(placeholder, parameters, at) {
    const head = placeholder.segments[0];
    if (INTEGER_SEGMENT.test(head)) {
        const index = Number(head);
        // Without a readable parameter list there is nothing to check the position against.
        if (parameters && index >= parameters.names.length && parameters.restIndex === undefined) {
            throw new LockKeyError(MESSAGES.templateIndexOutOfRange(at, placeholder.text, parameters.names.length));
        }
        return { ...placeholder, select: (args) => args[index] };
    }
    if (!parameters)
        throw new LockKeyError(MESSAGES.templateUnreadableParameters(at, head));
    const index = parameters.names.indexOf(head);
    if (index === -1)
        throw new LockKeyError(MESSAGES.templateUnknownParameter(at, head, describeParameters(parameters)));
    if (index === parameters.restIndex)
        return { ...placeholder, select: (args) => args.slice(index) };
    return { ...placeholder, select: (args) => args[index] };
}
/** `parameters are (id, dto, ...rest)` for messages; destructured parameters show their position. */
function describeParameters({ names, restIndex }) {
    if (names.length === 0)
        return 'the method declares no parameters';
    const shown = names.map((name, index) => {
        const label = name ?? `<${index}> destructured`;
        return index === restIndex ? `...${label}` : label;
    });
    return `parameters are (${shown.join(', ')})`;
}
// ---------------------------------------------------------------------------------------------------------
// Resolving (on every call)
// ---------------------------------------------------------------------------------------------------------
function resolvePlaceholder(placeholder, args, at) {
    const { segments } = placeholder;
    let value = placeholder.select(args);
    for (let i = 1; i < segments.length; i++) {
        // Only objects and functions are walked into; reading off undefined, null or a primitive is a mistake
        // in the template (or a missing argument), reported as such rather than as a TypeError.
        if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
            const owner = segments.slice(0, i).join('.');
            throw new LockKeyError(MESSAGES.templateBrokenPath(at, placeholder.text, segments[i], owner, value));
        }
        value = value[segments[i]];
    }
    const part = keyPart(value);
    if (part === undefined)
        throw new LockKeyError(MESSAGES.templateBadValue(at, placeholder.text, value));
    return part;
}
/**
 * The text a resolved value contributes to a key, or undefined if it cannot be part of one. Objects are
 * refused rather than stringified: `[object Object]` or a Date's locale string would silently make
 * unrelated calls share (or never share) a lock.
 */
function keyPart(value) {
    switch (typeof value) {
        case 'string':
            return value === '' ? undefined : value;
        case 'number':
            return Number.isFinite(value) ? String(value) : undefined;
        case 'bigint':
        case 'boolean':
            return String(value);
        default:
            return undefined;
    }
}
/** The function form: called with the method's arguments (and no `this`) on every call. */
function compileKeyFunction(keyFunction, at) {
    return {
        // A throwing key function propagates its own error unchanged.
        resolve: (args) => checkFunctionResult(keyFunction(...args), at),
    };
}
function checkFunctionResult(result, at) {
    if (typeof result === 'string' && result !== '')
        return [result];
    if (!Array.isArray(result))
        throw new LockKeyError(MESSAGES.templateBadFunctionResult(at, result));
    if (result.length === 0)
        throw new LockKeyError(MESSAGES.templateBadFunctionResult(at, result, 'the array is empty'));
    result.forEach((key, index) => {
        if (typeof key !== 'string' || key === '') {
            throw new LockKeyError(MESSAGES.templateBadFunctionResult(at, result, `element ${index} is ${describeValue(key)}`));
        }
    });
    // A copy, so later changes to the function's array cannot alter the keys of a held lock.
    return [...result];
}
/**
 * Names of the method's parameters in order; undefined for a destructured parameter. Rest parameter
 * `...xs` yields 'xs'. Returns [] when the source cannot be read (native or bound functions).
 */
export function parameterNamesOf(fn) {
    return [...(readParameters(fn)?.names ?? [])];
}
const NATIVE_CODE = /\{\s*\[native code\]\s*\}\s*$/;
/** The parameter list of `fn`, or undefined if its source is unavailable or not understood. */
function readParameters(fn) {
    let source;
    try {
        source = Function.prototype.toString.call(fn);
    }
    catch {
        return undefined; // Not a function after all (or an exotic proxy).
    }
    // Bound and built-in functions print as `function name() { [native code] }`, hiding their parameters.
    if (NATIVE_CODE.test(source))
        return undefined;
    try {
        return new SourceScanner(source).readParameterList();
    }
    catch (error) {
        if (error instanceof UnreadableSource)
            return undefined;
        throw error;
    }
}
/** Thrown inside the scanner when the source does not look like what it expects. */
class UnreadableSource extends Error {
}
const IDENTIFIER = /[\p{ID_Start}$_][\p{ID_Continue}$\u200C\u200D]*/uy;
/** Numeric literals, loosely: the scanner only needs to step over them (`1.5e3`, `0x1F`, `1_000n`). */
const NUMBER = /[0-9][0-9A-Za-z_.]*/y;
const REGEX_FLAGS = /[\p{ID_Continue}$]*/uy;
const WHITESPACE = /\s/;
const LINE_TERMINATOR = /[\n\r\u2028\u2029]/;
const CLOSER = { '(': ')', '[': ']', '{': '}' };
/** After these words an expression starts, so a `/` begins a regular expression rather than a division. */
const KEYWORDS_BEFORE_EXPRESSION = new Set([
    'await', 'case', 'delete', 'do', 'else', 'in', 'instanceof', 'new', 'of', 'return', 'throw', 'typeof', 'void', 'yield',
]);
/**
 * A minimal JavaScript scanner: just enough to find a function's parameter list in its source and to step
 * over default values. It tracks strings, template literals (with nested `${…}`), comments, regular
 * expression literals and bracket nesting, so commas and parentheses inside any of those are not mistaken
 * for the list's own. It never evaluates anything.
 */
class SourceScanner {
    constructor(src) {
        this.src = src;
        this.pos = 0;
        /** Whether a `/` here would start a regular expression (true) or be a division (false). */
        this.regexAllowed = true;
    }
    /**
     * Skips the head, everything before the parameter list: keywords (`async`, `function`, `get`, `static`),
     * `*`, and the name (identifier, `#private`, number, 'string' or [computed]). Also recognizes `x => …`.
     */
    readParameterList() {
        for (;;) {
            this.skipTrivia();
            const c = this.src[this.pos];
            if (c === '(')
                return this.readParenthesizedParameters();
            if (c === '[') {
                this.pos++;
                this.skipPast(']');
            }
            else if (c === '"' || c === "'") {
                this.skipString(c);
            }
            else if (c === '*' || c === '#') {
                this.pos++;
            }
            else {
                const word = this.readWord();
                if (word === undefined)
                    throw new UnreadableSource(); // `class X {…}`, end of source, …
                this.skipTrivia();
                // An arrow function with a single unparenthesized parameter: `x => …`, `async x => …`.
                if (this.src.startsWith('=>', this.pos))
                    return { names: [word], restIndex: undefined };
            }
        }
    }
    readParenthesizedParameters() {
        this.pos++; // (
        const names = [];
        let restIndex;
        for (;;) {
            this.skipTrivia();
            if (this.src[this.pos] === ')')
                return { names, restIndex }; // Also after a trailing comma.
            if (this.src.startsWith('...', this.pos)) {
                restIndex = names.length;
                this.pos += 3;
                this.skipTrivia();
            }
            // A destructuring pattern `{…}` / `[…]` has no name; the scan below steps over it.
            names.push(this.readIdentifier());
            this.regexAllowed = names[names.length - 1] === undefined;
            // Whatever follows the name (a default value) or makes up the pattern, up to the next , or ).
            if (this.skipExpression(',)') === ',')
                this.pos++;
        }
    }
    /** Steps over code until one of `stops` at nesting depth 0, which it returns without consuming. */
    skipExpression(stops) {
        for (;;) {
            this.skipTrivia();
            const c = this.src[this.pos];
            if (c === undefined)
                throw new UnreadableSource();
            if (stops.includes(c))
                return c;
            switch (c) {
                case '(':
                case '[':
                case '{':
                    this.pos++;
                    this.skipPast(CLOSER[c]);
                    this.regexAllowed = false;
                    break;
                case ')':
                case ']':
                case '}':
                    throw new UnreadableSource(); // A closer that does not match the open bracket.
                case '"':
                case "'":
                    this.skipString(c);
                    break;
                case '`':
                    this.skipTemplate();
                    break;
                case '/':
                    if (this.regexAllowed) {
                        this.skipRegex();
                    }
                    else {
                        this.pos++;
                        this.regexAllowed = true;
                    }
                    break;
                default: {
                    const word = this.readWord();
                    if (word !== undefined) {
                        this.regexAllowed = KEYWORDS_BEFORE_EXPRESSION.has(word);
                    }
                    else {
                        this.pos++; // Any other punctuator.
                        this.regexAllowed = true;
                    }
                }
            }
        }
    }
    /** Steps over the inside of a bracket group and its `closer`. */
    skipPast(closer) {
        this.skipExpression(closer);
        this.pos++;
    }
    /** Whitespace, `// line` and `/* block *\/` comments. */
    skipTrivia() {
        for (;;) {
            const c = this.src[this.pos];
            if (c === undefined)
                return;
            if (WHITESPACE.test(c)) {
                this.pos++;
            }
            else if (c === '/' && this.src[this.pos + 1] === '/') {
                while (this.pos < this.src.length && !LINE_TERMINATOR.test(this.src[this.pos]))
                    this.pos++;
            }
            else if (c === '/' && this.src[this.pos + 1] === '*') {
                const end = this.src.indexOf('*/', this.pos + 2);
                if (end === -1)
                    throw new UnreadableSource();
                this.pos = end + 2;
            }
            else {
                return;
            }
        }
    }
    skipString(quote) {
        this.pos++;
        for (;;) {
            const c = this.src[this.pos];
            if (c === undefined)
                throw new UnreadableSource();
            if (c === '\\') {
                this.pos += 2;
            }
            else {
                this.pos++;
                if (c === quote)
                    break;
            }
        }
        this.regexAllowed = false;
    }
    /** A template literal; each `${…}` inside is code, scanned recursively (it may hold further templates). */
    skipTemplate() {
        this.pos++;
        for (;;) {
            const c = this.src[this.pos];
            if (c === undefined)
                throw new UnreadableSource();
            if (c === '\\') {
                this.pos += 2;
            }
            else if (c === '$' && this.src[this.pos + 1] === '{') {
                this.pos += 2;
                this.regexAllowed = true;
                this.skipPast('}');
            }
            else {
                this.pos++;
                if (c === '`')
                    break;
            }
        }
        this.regexAllowed = false;
    }
    /** A regular expression literal: a `/` inside a class `[…]` does not end it. */
    skipRegex() {
        this.pos++;
        let inClass = false;
        for (;;) {
            const c = this.src[this.pos];
            if (c === undefined || LINE_TERMINATOR.test(c))
                throw new UnreadableSource();
            this.pos++;
            if (c === '\\')
                this.pos++;
            else if (c === '[')
                inClass = true;
            else if (c === ']')
                inClass = false;
            else if (c === '/' && !inClass)
                break;
        }
        REGEX_FLAGS.lastIndex = this.pos;
        if (REGEX_FLAGS.test(this.src))
            this.pos = REGEX_FLAGS.lastIndex;
        this.regexAllowed = false;
    }
    /** An identifier or a number at the cursor (consumed), or undefined. */
    readWord() {
        return this.readIdentifier() ?? this.match(NUMBER);
    }
    readIdentifier() {
        return this.match(IDENTIFIER);
    }
    match(pattern) {
        pattern.lastIndex = this.pos;
        const found = pattern.exec(this.src);
        if (!found)
            return undefined;
        this.pos = pattern.lastIndex;
        return found[0];
    }
}
//# sourceMappingURL=key-template.js.map