import { Redis } from 'ioredis';

/** Admin connections of the topology harnesses: short-lived, never waiting on a dead server. */
const HOST = '127.0.0.1';
const ADMIN_TIMEOUT_MS = 2_000;

/**
 * One command on a short-lived, fail-fast RESP2 connection (no retries, no
 * offline queue, 2 s timeouts). Always closes the connection.
 */
export function adminCall(port: number, command: string, ...args: Array<string | number>): Promise<unknown> {
  return withAdminClient(port, (client) => client.call(command, ...args));
}

/**
 * Several commands as one MULTI/EXEC on such a connection: no other client's command runs between
 * them. Rejects if any of them failed.
 */
export function adminTransaction(port: number, commands: Array<[string, ...Array<string | number>]>): Promise<unknown[]> {
  return withAdminClient(port, async (client) => {
    const transaction = client.multi();
    for (const [command, ...args] of commands) transaction.call(command, ...args);
    const replies = (await transaction.exec()) ?? [];
    const failed = replies.find(([error]) => error);
    if (failed) throw failed[0];
    return replies.map(([, reply]) => reply);
  });
}

async function withAdminClient<T>(port: number, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({
    host: HOST,
    port,
    protocol: 2,
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: ADMIN_TIMEOUT_MS,
    commandTimeout: ADMIN_TIMEOUT_MS,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } finally {
    if (client.status === 'ready' || client.status === 'connect') {
      await client.quit().catch(() => client.disconnect());
    } else if (client.status !== 'end') {
      client.disconnect();
    }
  }
}

export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/**
 * Creates (or resets) an ACL user that may run everything but subscribe (it may still publish, as
 * the release scripts do) and returns its URL: no release message ever reaches a client using it.
 */
export async function noSubscribeUserUrl(port: number): Promise<string> {
  await adminCall(port, 'ACL', 'SETUSER', 'no-subscribe', 'on', '>pw', '~*', '&*', '+@all', '-subscribe', '-psubscribe', '-ssubscribe');
  return `redis://no-subscribe:pw@${HOST}:${port}`;
}
