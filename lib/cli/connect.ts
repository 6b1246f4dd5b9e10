import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { InspectionBackend } from '../inspection/inspection-backend.js';
import { RedisInspection } from '../inspection/redis-inspection.js';
import { RedlockInspection } from '../inspection/redlock-inspection.js';
import { flag, flagList, UsageError, type ParsedArgs } from './args.js';

export interface Connection {
  backend: InspectionBackend;
  /** Where it is connected, for headers (no password). */
  describe: string;
  close(): Promise<void>;
}

/** A CLI fails fast rather than reconnecting forever: a few retries, then the error. */
const CLIENT_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 1,
  connectTimeout: 5_000,
  retryStrategy: (times) => (times > 3 ? null : 200),
};

function hostPort(text: string, what: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (!match) throw new UsageError(`${what} expects host:port, got "${text}"`);
  return { host: match[1], port: Number(match[2]) };
}

function redisUrl(url: string): Redis {
  if (!/^rediss?:\/\//i.test(url)) throw new UsageError(`expected a Redis URL like redis://host:6379 (or rediss:// for TLS), got "${url}"`);
  return new Redis(url, CLIENT_OPTIONS);
}

function hidePassword(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`);
}

/**
 * The connection the flags ask for, as the module accepts them: `--redis URL` (else REDIS_URL, else
 * redis://127.0.0.1:6379), `--sentinel host:port,... --name master`, `--cluster host:port,...`, or
 * `--redlock URL,URL,URL`; `--prefix` as in the module (default `lock:`).
 */
export function connect(args: ParsedArgs, env: NodeJS.ProcessEnv): Connection {
  const prefix = flag(args, 'prefix') ?? 'lock:';
  if (prefix.length === 0) throw new UsageError('--prefix must not be empty');
  const password = flag(args, 'password');
  const redlock = flagList(args, 'redlock');
  const cluster = flagList(args, 'cluster');
  const sentinels = flagList(args, 'sentinel');
  const chosen = [redlock.length > 0, cluster.length > 0, sentinels.length > 0, flag(args, 'redis') !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('give one of --redis, --sentinel, --cluster, --redlock');

  if (redlock.length > 0) {
    if (redlock.length < 3) throw new UsageError('--redlock expects 3 or more Redis URLs (comma-separated or repeated)');
    const clients = redlock.map(redisUrl);
    for (const client of clients) client.on('error', () => undefined);
    return {
      backend: new RedlockInspection(clients.map((client) => new RedisInspection(client, prefix))),
      describe: `redlock ${redlock.map(hidePassword).join(',')} prefix ${prefix}`,
      close: async () => void (await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())))),
    };
  }
  let client: Redis | Cluster;
  let describe: string;
  if (cluster.length > 0) {
    client = new Cluster(
      cluster.map((node) => hostPort(node, '--cluster')),
      { redisOptions: { ...CLIENT_OPTIONS, password }, clusterRetryStrategy: (times) => (times > 3 ? null : 200) },
    );
    describe = `cluster ${cluster.join(',')}`;
  } else if (sentinels.length > 0) {
    const name = flag(args, 'name');
    if (!name) throw new UsageError('--sentinel needs --name <master name>');
    client = new Redis({ ...CLIENT_OPTIONS, sentinels: sentinels.map((node) => hostPort(node, '--sentinel')), name, password });
    describe = `sentinel ${sentinels.join(',')} master ${name}`;
  } else {
    const url = flag(args, 'redis') ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    client = redisUrl(url);
    describe = hidePassword(url);
  }
  client.on('error', () => undefined); // reported through the failing command instead
  return {
    backend: new RedisInspection(client, prefix),
    describe: `${describe} prefix ${prefix}`,
    close: async () => {
      await client.quit().catch(() => client.disconnect());
    },
  };
}
