import { lockKeyOf } from '../stores/redis.store.js';

/** Which Redis key of a user key this is; only the ones that record a hold matter to `list`. */
export type KeyPart = 'lock' | 'permits' | 'readers';

const HELD_SUFFIXES: ReadonlyArray<[string, KeyPart]> = [
  [':permits', 'permits'],
  [':readers', 'readers'],
];

/**
 * The user key behind a Redis key that records a hold (`<prefix>{K}`, `<prefix>{K}:permits`,
 * `<prefix>{K}:readers`, or the `<prefix>~{...}` layout of keys starting with `}`), or undefined for
 * any other key (fence counters, markers, queues, instance records, foreign keys). The answer is
 * checked by building the Redis key again, so a user key that itself contains `}:permits` can
 * never be misread.
 */
export function heldUserKeyOf(prefix: string, redisKey: string): { key: string; part: KeyPart } | undefined {
  if (!redisKey.startsWith(prefix)) return undefined;
  let body = redisKey.slice(prefix.length);
  let part: KeyPart = 'lock';
  if (!body.endsWith('}')) {
    const suffix = HELD_SUFFIXES.find(([text]) => body.endsWith(text));
    if (!suffix) return undefined;
    body = body.slice(0, -suffix[0].length);
    part = suffix[1];
  }
  let key: string;
  if (body.startsWith('{') && body.endsWith('}') && body.length >= 2) {
    key = body.slice(1, -1);
  } else if (body.startsWith('~{') && body.endsWith('}') && body.length >= 3) {
    key = body.slice(2, -1).replace(/%(25|7D)/g, (_, code: string) => (code === '25' ? '%' : '}'));
  } else {
    return undefined;
  }
  if (key.length === 0) return undefined;
  const rebuilt = lockKeyOf(prefix, key);
  return rebuilt + (part === 'lock' ? '' : `:${part}`) === redisKey ? { key, part } : undefined;
}

/** Escapes Redis glob characters, so a prefix is matched literally. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

/**
 * The SCAN MATCH pattern for user keys matching `match` under `prefix`: narrowed to
 * `<prefix>{<match>}*` when the match starts with a literal character (so every candidate has the
 * usual layout), else every key under the prefix. Candidates are checked with {@link globMatcher}
 * afterwards either way.
 */
export function scanPattern(prefix: string, match: string | undefined): string {
  const all = `${escapeGlob(prefix)}*`;
  if (match === undefined || match.length === 0 || /^[*?[\\}]/.test(match)) return all;
  return `${escapeGlob(prefix)}{${match}}*`;
}

/** Redis glob semantics (`*`, `?`, `[abc]`, `[^a-z]`, `\x`) as a test on whole strings. */
export function globMatcher(pattern: string | undefined): (text: string) => boolean {
  if (pattern === undefined) return () => true;
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === '*') source += '[\\s\\S]*';
    else if (char === '?') source += '[\\s\\S]';
    else if (char === '\\' && i + 1 < pattern.length) source += escapeRegExp(pattern[++i]);
    else if (char === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        source += '\\[';
        continue;
      }
      let set = pattern.slice(i + 1, end);
      const negate = set.startsWith('^');
      if (negate) set = set.slice(1);
      const members = set.replace(/\\(.)/g, '$1').replace(/[\]\\^]/g, (c) => `\\${c}`);
      source += `[${negate ? '^' : ''}${members}]`;
      i = end;
    } else source += escapeRegExp(char);
  }
  const regexp = new RegExp(`^${source}$`, 'u');
  return (text) => regexp.test(text);
}

function escapeRegExp(char: string): string {
  return char.replace(/[.*+?^${}()|[\]\\/]/g, (c) => `\\${c}`);
}
