import { Writable } from 'node:stream';
import { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { RedisLockStore } from '../lib/stores/redis.store.js';
import { coalesceWrites } from '../lib/stores/write-coalescing.js';
import { RedisCluster } from './support/redis-cluster.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { FixtureProcess } from './support/fixture-process.js';
import { eventually } from './support/lock-app.js';

/** Records each batch the stream hands on: one entry per write(v) reaching the underlying sink. */
function recordingStream(): { stream: Writable; batches: string[][] } {
  const batches: string[][] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      batches.push([String(chunk)]);
      done();
    },
    writev(chunks, done) {
      batches.push(chunks.map(({ chunk }) => String(chunk)));
      done();
    },
  });
  return { stream, batches };
}

/** Spies on the socket's batched writes: how many commands each one carried. */
function spyOnWritev(client: Redis): number[] {
  const sizes: number[] = [];
  const socket = client.stream as Socket & { _writev(chunks: unknown[], done: unknown): void };
  const writev = socket._writev;
  socket._writev = function (this: Socket, chunks: unknown[], done: unknown) {
    sizes.push(chunks.length);
    return writev.call(this, chunks, done);
  };
  return sizes;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('coalesced writes (one write per turn of the event loop)', () => {
  it('hands every command written in one turn on in one batch, in order, and the next turn in another', async () => {
    const { stream, batches } = recordingStream();
    // Just what coalesceWrites reads of a client: its stream, and the "connect" event of a new one.
    coalesceWrites({ stream, on: () => undefined } as unknown as Redis);
    stream.write('a');
    stream.write('b');
    stream.write('c');
    await tick();
    stream.write('d');
    await tick();
    expect(batches).toEqual([['a', 'b', 'c'], ['d']]);
  });

  describe('on a real connection', () => {
    let server: RedisServer;
    let admin: Redis;
    beforeAll(async () => {
      server = await RedisServer.start();
      admin = server.client();
    });
    afterAll(async () => {
      await FixtureProcess.killAll(); // a fixture that hung instead of exiting
      await admin?.quit();
      await stopAllRedisServers();
    });

    it('sends the commands of one turn in one write, and keeps doing so on the socket of a reconnect', async () => {
      const client = new Redis(server.url);
      coalesceWrites(client);
      try {
        await client.ping();
        const sizes = spyOnWritev(client);
        const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.set(`coalesce:${i}`, String(i)).then(() => client.get(`coalesce:${i}`))));
        expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
        expect(sizes[0]).toBe(20); // the 20 SETs of the first turn went out together

        const before = client.stream;
        await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
        await eventually(() => client.status === 'ready' && client.stream !== before, 10_000, 'the client reconnected');
        const after = spyOnWritev(client);
        await Promise.all(Array.from({ length: 10 }, (_, i) => client.incr(`coalesce:counter:${i}`)));
        expect(after).toEqual([10]);
      } finally {
        client.disconnect();
      }
    });

    it('is applied to connections the store opens, never to a client the application passes in', async () => {
      const owned = RedisLockStore.create(server.url, { prefix: 'coalesce:' });
      const yours = new Redis(server.url);
      const passed = RedisLockStore.create(yours, { prefix: 'coalesce:' });
      try {
        const ownedClient = owned.inspectionTarget.client as Redis;
        await ownedClient.ping();
        await yours.ping();
        expect(ownedClient.stream.write).not.toBe(Socket.prototype.write);
        expect(yours.stream.write).toBe(Socket.prototype.write);
      } finally {
        await owned.close();
        await passed.close();
        yours.disconnect();
      }
    });

    it('sends what a process wrote before it exits in the same turn (an unawaited release is not lost)', async () => {
      const child = FixtureProcess.spawn('exit-after-release.mjs', { redisUrl: server.url, key: 'coalesce:exit' }, 'exit-after-release');
      const { code } = await child.exited;
      expect(code).toBe(0); // it exits 0 only after it held the lock
      // Its lease was 60 s: the key is free now only because the release reached Redis.
      expect(await admin.exists('lock:{coalesce:exit}')).toBe(0);
    });

    it('is applied to every node of a Cluster the store connects to', async () => {
      const cluster = await RedisCluster.start({ masters: 3 });
      const store = RedisLockStore.create({ cluster: cluster.startupNodes }, { prefix: 'coalesce:' });
      try {
        const client = store.inspectionTarget.client as import('ioredis').Cluster;
        await client.set('coalesce', '1'); // the slot map is known from here on
        const nodes = client.nodes('master');
        expect(nodes).toHaveLength(3);
        await Promise.all(nodes.map((node) => node.ping())); // the Cluster connects to a node on its first command
        for (const node of nodes) expect(node.stream.write).not.toBe(Socket.prototype.write);
      } finally {
        await store.close();
        await cluster.stop();
      }
    }, 60_000);
  });
});
