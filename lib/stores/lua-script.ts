import { createHash } from 'node:crypto';
import { Command, type Cluster, type Redis } from 'ioredis';

type Argument = string | number;

/**
 * A command handed its arguments already flat. ioredis's own constructor flattens whatever it is
 * given (`Array.prototype.flat`), which Node 20 runs slowly: about 4 µs for the 19 arguments of
 * an acquire, more than the rest of ioredis's work on the command (Node 22 and 24: under 1 µs).
 */
class FlatCommand extends Command {
  constructor(name: string, args: Argument[]) {
    super(name, [], { replyEncoding: 'utf8' });
    // What the constructor does to the arguments it is given, besides flattening: numbers become strings.
    for (let i = 0; i < args.length; i++) if (typeof args[i] !== 'string') args[i] = String(args[i]);
    this.args = args;
  }
}

/** A Lua script of this library, run by its SHA. */
export class LuaScript {
  readonly sha: string;
  /** Clients this script was sent to in full (EVAL) at least once. */
  private readonly sentTo = new WeakSet<Redis | Cluster>();

  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /**
   * Runs the script: `args` is the number of keys, the keys, then the other arguments. Its first
   * run on a client sends it in full (EVAL, which also loads it), later ones by SHA (EVALSHA), and
   * in full again where Redis does not know it (NOSCRIPT: another node of a Cluster, a restart, a
   * failover, SCRIPT FLUSH). An EVALSHA answered NOSCRIPT did not run, so the EVAL runs it once;
   * like ioredis's own scripts (`defineCommand`), it goes out after whatever was sent meanwhile: a
   * caller whose next command must run after this one waits for its reply first. A client with a
   * `keyPrefix` gets ioredis's own treatment of the key arguments.
   */
  run<T>(client: Redis | Cluster, args: Argument[]): Promise<T> {
    if (!this.sentTo.has(client)) {
      this.sentTo.add(client);
      return send<T>(client, 'eval', this.lua, args);
    }
    return send<T>(client, 'evalsha', this.sha, args).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.includes('NOSCRIPT')) throw error;
      return send<T>(client, 'eval', this.lua, args);
    });
  }
}

/** Sends EVAL or EVALSHA (`script` is the source or the SHA) with the script's arguments. */
function send<T>(client: Redis | Cluster, name: 'eval' | 'evalsha', script: string, args: Argument[]): Promise<T> {
  const keyPrefix = (client.options as { keyPrefix?: unknown }).keyPrefix;
  const command = keyPrefix
    ? new Command(name, [script, ...args], { replyEncoding: 'utf8', keyPrefix: keyPrefix as string })
    : new FlatCommand(name, [script, ...args]);
  return client.sendCommand(command) as Promise<T>;
}
