/** Command-line arguments: `<command> [positional...] [--flag value] [--switch]`. */
export interface ParsedArgs {
  command: string | undefined;
  positional: string[];
  flags: Map<string, string[]>;
  switches: Set<string>;
}

/** Flags that take a value; every other `--name` is a switch. */
const VALUE_FLAGS = new Set(['redis', 'prefix', 'sentinel', 'name', 'password', 'cluster', 'redlock', 'limit', 'interval', 'count', 'timeout']);
const SWITCHES = new Set(['json', 'force', 'yes', 'help', 'version']);

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const parsed: ParsedArgs = { command: undefined, positional: [], flags: new Map(), switches: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      parsed.positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      parsed.switches.add('help');
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      if (VALUE_FLAGS.has(name)) {
        const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
        parsed.flags.set(name, [...(parsed.flags.get(name) ?? []), value]);
      } else if (SWITCHES.has(name) && eq < 0) {
        parsed.switches.add(name);
      } else {
        throw new UsageError(`unknown option --${name}`);
      }
      continue;
    }
    if (parsed.command === undefined) parsed.command = arg;
    else parsed.positional.push(arg);
  }
  return parsed;
}

/** The last value given for a flag. */
export function flag(args: ParsedArgs, name: string): string | undefined {
  const values = args.flags.get(name);
  return values?.[values.length - 1];
}

/** Every value of a flag, comma-separated lists split. */
export function flagList(args: ParsedArgs, name: string): string[] {
  return (args.flags.get(name) ?? []).flatMap((value) => value.split(',')).map((value) => value.trim()).filter(Boolean);
}

export function positiveIntFlag(args: ParsedArgs, name: string, fallback: number): number {
  const value = flag(args, name);
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new UsageError(`--${name} expects a whole number, 1 or more (got "${value}")`);
  return number;
}
