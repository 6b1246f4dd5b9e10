#!/usr/bin/env node
/**
 * `nestjs-redis-lock`: who holds which lock, live, and breaking a stuck one safely.
 *
 *   nestjs-redis-lock list    [match] [--limit N] [--json]
 *   nestjs-redis-lock inspect KEY [--json]
 *   nestjs-redis-lock watch   [match] [--interval ms] [--count N] [--json]
 *   nestjs-redis-lock release KEY --force [--yes] [--json]
 *
 * Connection: --redis URL (else REDIS_URL, else redis://127.0.0.1:6379), --sentinel host:port,...
 * --name master [--password p], --cluster host:port,..., or --redlock URL,URL,URL; --prefix
 * (default lock:). Exit codes: 0 done, 1 failed, 2 bad usage, 3 release declined.
 */
import { createInterface } from 'node:readline';
import { HolderTokens, newInstanceId } from '../instance/holder-token.js';
import { LockInspector } from '../inspection/lock-inspector.js';
import type { LockInfo } from '../inspection/lock-info.interface.js';
import { LIBRARY_VERSION } from '../version.js';
import { withTimeout } from '../with-timeout.js';
import { flag, parseArgs, positiveIntFlag, UsageError, type ParsedArgs } from './args.js';
import { connect, type Connection } from './connect.js';
import { details, instanceLabel, plainLine, row, table } from './format.js';

const USAGE = `Usage: nestjs-redis-lock <command> [options]

Commands:
  list [match]            held locks (match: a glob over keys, e.g. 'order:*')
  inspect KEY             who holds KEY, since when, lease left, fence, waiters
  watch [match]           a live table (plain lines when not a terminal)
  release KEY --force     break a stuck lock: removes its holds, bumps the fence, wakes waiters;
                          the old holder's signal aborts at its next renewal. Asks first unless --yes

Options:
  --redis URL             redis:// or rediss:// URL (default: $REDIS_URL, else redis://127.0.0.1:6379)
  --sentinel H:P,...      Sentinel nodes, with --name <master> [--password <p>]
  --cluster H:P,...       Redis Cluster startup nodes [--password <p>]
  --redlock URL,URL,URL   Redlock masters
  --prefix P              key prefix of the module (default lock:)
  --json                  machine-readable output (watch: one JSON line per refresh)
  --limit N               list/watch: at most N locks (default 1000)
  --interval MS           watch: refresh period (default 1000)
  --count N               watch: stop after N refreshes
  --timeout MS            bound on each command against Redis (default 5000)
  --yes                   release: do not ask
`;

interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream;
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (error) {
    io.err.write(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.switches.has('version')) {
    io.out.write(`${LIBRARY_VERSION}\n`);
    return 0;
  }
  if (args.switches.has('help') || args.command === undefined || args.command === 'help') {
    (args.command === undefined && !args.switches.has('help') ? io.err : io.out).write(USAGE);
    return args.command === undefined && !args.switches.has('help') ? 2 : 0;
  }
  let connection: Connection | undefined;
  try {
    const command = COMMANDS[args.command];
    if (!command) throw new UsageError(`unknown command "${args.command}"`);
    connection = connect(args, io.env);
    return await command(args, new LockInspector(connection.backend), connection, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err.write(`${error.message}\n\n${USAGE}`);
      return 2;
    }
    io.err.write(`nestjs-redis-lock: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await connection?.close();
  }
}

type Command = (args: ParsedArgs, inspector: LockInspector, connection: Connection, io: Io) => Promise<number>;

const json = (value: unknown) => `${JSON.stringify(value)}\n`;

function timeout(args: ParsedArgs): number {
  return positiveIntFlag(args, 'timeout', 5_000);
}

function oneKey(args: ParsedArgs, command: string): string {
  if (args.positional.length !== 1 || args.positional[0] === '') throw new UsageError(`${command} expects exactly one KEY`);
  return args.positional[0];
}

function optionalMatch(args: ParsedArgs, command: string): string | undefined {
  if (args.positional.length > 1) throw new UsageError(`${command} takes at most one match pattern`);
  return args.positional[0];
}

async function held(args: ParsedArgs, inspector: LockInspector, match: string | undefined): Promise<LockInfo[]> {
  const locks = await withTimeout(inspector.list({ match, limit: positiveIntFlag(args, 'limit', 1_000) }).toArray(), timeout(args) * 4);
  // SCAN order is arbitrary: sorted, so refreshes and scripts see a stable order.
  return locks.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

const COMMANDS: Record<string, Command> = {
  async list(args, inspector, _connection, io) {
    const locks = await held(args, inspector, optionalMatch(args, 'list'));
    if (args.switches.has('json')) io.out.write(json(locks));
    else if (locks.length === 0) io.out.write('no locks held\n');
    else io.out.write(`${table(locks.map((info) => row(info, Date.now())))}\n`);
    return 0;
  },

  async inspect(args, inspector, _connection, io) {
    const info = await withTimeout(inspector.inspect(oneKey(args, 'inspect')), timeout(args));
    io.out.write(args.switches.has('json') ? json(info) : `${details(info, Date.now())}\n`);
    return 0;
  },

  async watch(args, inspector, connection, io) {
    const match = optionalMatch(args, 'watch');
    const interval = positiveIntFlag(args, 'interval', 1_000);
    const count = flag(args, 'count') === undefined ? Number.POSITIVE_INFINITY : positiveIntFlag(args, 'count', 1);
    const tty = io.out.isTTY === true && !args.switches.has('json');
    let stop = false;
    const onSignal = () => {
      stop = true;
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      for (let i = 0; i < count && !stop; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, interval));
        if (stop) break;
        const locks = await held(args, inspector, match);
        const now = Date.now();
        if (args.switches.has('json')) {
          io.out.write(json({ at: new Date(now).toISOString(), locks }));
        } else if (tty) {
          const header = `nestjs-redis-lock watch ${match ?? '*'} — ${connection.describe} — ${new Date(now).toISOString()} — ${locks.length} held (Ctrl-C to quit)`;
          const body = locks.length === 0 ? 'no locks held' : table(locks.map((info) => row(info, now)));
          io.out.write(`\x1b[H\x1b[2J${header}\n\n${body}\n`);
        } else if (locks.length === 0) {
          io.out.write(`${new Date(now).toISOString()} no locks held\n`);
        } else {
          for (const info of locks) io.out.write(`${new Date(now).toISOString()} ${plainLine(info, now)}\n`);
        }
      }
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
    return 0;
  },

  async release(args, inspector, _connection, io) {
    const key = oneKey(args, 'release');
    if (!args.switches.has('force')) {
      throw new UsageError(`release breaks another process's lock: it needs --force (release ${key} --force)`);
    }
    const before = await withTimeout(inspector.inspect(key), timeout(args));
    if (!args.switches.has('yes')) {
      const who = before.held ? before.holders.map((holder) => instanceLabel(holder.instance)).join(', ') : 'nobody';
      io.err.write(`${details(before, Date.now())}\n`);
      const answer = await ask(io, `Force-release "${key}" (held by ${who})? Its fence is bumped and waiters are woken. [y/N] `);
      if (!/^y(es)?$/i.test(answer.trim())) {
        io.err.write('Not released.\n');
        return 3;
      }
    }
    // Announced as a release by a one-off holder id, so the message parses like any other.
    const announce = new HolderTokens(newInstanceId()).next();
    const outcome = await withTimeout(inspector.forceRelease(key, announce), timeout(args));
    if (args.switches.has('json')) {
      io.out.write(json(outcome));
    } else if (outcome.released === 0) {
      io.out.write(`"${key}" was not held; fence counter bumped to ${outcome.fence}.\n`);
    } else {
      io.out.write(
        `Released "${key}": ${outcome.released} hold${outcome.released === 1 ? '' : 's'} of ${outcome.holders.map(instanceLabel).join(', ')}. ` +
          `Fence counter now ${outcome.fence}: writes fenced by the old holder are below it. ` +
          `Waiters were notified; the old holder's signal aborts at its next renewal.\n`,
      );
    }
    return 0;
  },
};

/** One line from the user (or from stdin when piped); empty on end of input. */
function ask(io: Io, question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: io.input, output: io.err as NodeJS.WritableStream, terminal: io.input.isTTY === true });
    let answered = false;
    rl.question(question, (answer) => {
      answered = true;
      // A piped answer is not echoed: show it, so the transcript reads like the terminal.
      if (io.input.isTTY !== true) io.err.write(`${answer}\n`);
      rl.close();
      resolve(answer);
    });
    rl.on('close', () => {
      if (!answered) resolve('');
    });
  });
}

run(process.argv.slice(2), { out: process.stdout, err: process.stderr, input: process.stdin, env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`nestjs-redis-lock: ${String(error)}\n`);
    process.exitCode = 1;
  },
);
