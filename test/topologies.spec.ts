import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { describeCoreBehaviour } from './support/core-behaviour.js';

describe('topologies', () => {
  let single: RedisServer;
  let masters: RedisServer[];

  beforeAll(async () => {
    single = await RedisServer.start();
    masters = await RedisServer.startMany(3);
  });
  afterAll(() => stopAllRedisServers());

  describeCoreBehaviour('a single Redis', () => ({ redis: single.url }));
  describeCoreBehaviour('Redlock over 3 masters', () => ({ redlock: masters.map((m) => m.url) }));
  describeCoreBehaviour("the in-process store (store: 'memory')", () => ({ store: 'memory', prefix: 'core-memory:' }));
});
