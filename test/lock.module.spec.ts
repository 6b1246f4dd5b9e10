import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  LockConfigError,
  LockModule,
  LockService,
  LockUnavailableError,
  type LockModuleOptions,
  type LockOptionsFactory,
} from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { eventually, startLockApp } from './support/lock-app.js';

/** Boots an app with the given module import and returns the error its bootstrap threw. */
async function bootstrapError(options: unknown): Promise<unknown> {
  try {
    const app = await startLockApp(options as LockModuleOptions);
    await app.close();
  } catch (error) {
    return error;
  }
  throw new Error(`bootstrap with ${JSON.stringify(options)} succeeded but should have failed`);
}

describe('LockModule', () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = server.client();
  });
  afterAll(async () => {
    await redis?.quit();
    await stopAllRedisServers();
  });

  describe('rejects invalid options at bootstrap with a LockConfigError naming option and value', () => {
    const url = () => server.url;
    const cases: Array<[string, () => unknown, RegExp]> = [
      ['no backend', () => ({ ttl: 1000 }), /exactly one backend.*none was given/],
      ['two backends', () => ({ redis: url(), store: 'memory' }), /"redis" and "store"/],
      ['redlock with two masters', () => ({ redlock: [url(), url()] }), /"redlock": array\(2\);.*3 or more/],
      ['redlock master not a URL', () => ({ redlock: [url(), url(), 'nope'] }), /"redlock\[2\]": "nope"/],
      ['redlock with fair', () => ({ redlock: [url(), url(), url()], fair: true }), /"fair" cannot be combined with "redlock"/],
      ['redlock with waitForReplicas', () => ({ redlock: [url(), url(), url()], waitForReplicas: 1 }), /"waitForReplicas" cannot/],
      ['waitForReplicas negative', () => ({ redis: url(), waitForReplicas: -1 }), /"waitForReplicas": -1/],
      ['waitForReplicas on a cluster', () => ({ redis: { cluster: [{ host: '127.0.0.1', port: 1 }] }, waitForReplicas: 1 }), /not supported on a Redis Cluster/],
      ['store memory with waitForReplicas', () => ({ store: 'memory', waitForReplicas: 1 }), /"waitForReplicas" applies to Redis only/],
      ['unknown store', () => ({ store: 'disk' }), /"store": "disk"/],
      ['ttl 0', () => ({ redis: url(), ttl: 0 }), /"ttl": 0;.*greater than 0/],
      ['ttl negative', () => ({ redis: url(), ttl: -5 }), /"ttl": -5/],
      ['ttl NaN', () => ({ redis: url(), ttl: Number.NaN }), /"ttl": NaN/],
      ['ttl Infinity', () => ({ redis: url(), ttl: Number.POSITIVE_INFINITY }), /"ttl": Infinity/],
      ['ttl string', () => ({ redis: url(), ttl: '1000' }), /"ttl": "1000"/],
      ['wait negative', () => ({ redis: url(), wait: -1 }), /"wait": -1;.*0 or more/],
      ['wait NaN', () => ({ redis: url(), wait: Number.NaN }), /"wait": NaN/],
      ['maxHold 0', () => ({ redis: url(), maxHold: 0 }), /"maxHold": 0/],
      ['autoExtend not boolean', () => ({ redis: url(), autoExtend: 'yes' }), /"autoExtend": "yes"/],
      ['prefix empty', () => ({ redis: url(), prefix: '' }), /"prefix": ""/],
      ['prefix not a string', () => ({ redis: url(), prefix: 7 }), /"prefix": 7/],
      ['fair not boolean', () => ({ redis: url(), fair: 'yes' }), /"fair": "yes"/],
      ['pollInterval 0', () => ({ redis: url(), pollInterval: 0 }), /"pollInterval": 0/],
      ['unknown option', () => ({ redis: url(), tll: 1000 }), /Unknown LockModule option "tll"/],
      ['redis not a URL', () => ({ redis: 'localhost:6379' }), /"redis": "localhost:6379"/],
      ['redis a number', () => ({ redis: 6379 }), /"redis": 6379/],
    ];
    it.each(cases)('%s', async (_name, options, message) => {
      const error = await bootstrapError(options());
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(message);
    });
  });

  it('rejects invalid per-call options with LockConfigError', async () => {
    const app = await startLockApp({ redis: server.url });
    const bad: Array<[object, RegExp]> = [
      [{ ttl: 0 }, /"ttl": 0/],
      [{ wait: -1 }, /"wait": -1/],
      [{ permits: 0 }, /"permits": 0/],
      [{ permits: 2.5 }, /"permits": 2.5/],
      [{ permits: 2, fair: true }, /"fair": true; fair mode is for exclusive locks/],
      [{ mode: 'read', permits: 2 }, /cannot also be a semaphore/],
      [{ mode: 'read', fair: true }, /fair mode is for exclusive locks/],
      [{ mode: 'shared' }, /"mode": "shared"/],
      [{ fair: 1 }, /"fair": 1/],
      [{ signal: 'stop' }, /"signal": "stop"/],
      [{ retries: 3 }, /Unknown lock option "retries"/],
    ];
    for (const [options, message] of bad) {
      await expect(app.locks.acquire('k', options)).rejects.toThrow(message);
      await expect(app.locks.acquire('k', options)).rejects.toBeInstanceOf(LockConfigError);
    }
    await expect(app.locks.acquire(['k', 'l'], { fair: true })).rejects.toThrow(/"fair" works with one key/);
    expect(await app.locks.isLocked('k')).toBe(false);
    await app.close();
  });

  it('forRoot with a URL, applying prefix and defaults', async () => {
    const app = await startLockApp({ redis: server.url, prefix: 'app1:' });
    const lock = await app.locks.acquire('a');
    expect(await redis.exists('app1:{a}')).toBe(1);
    const pttl = await redis.pttl('app1:{a}');
    expect(pttl).toBeGreaterThan(20_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    await lock.release();
    await app.close();
  });

  it('forRoot with ioredis options', async () => {
    const app = await startLockApp({ redis: { host: server.host, port: server.port }, ttl: 5_000 });
    const lock = await app.locks.acquire('opts');
    expect(await redis.pttl('lock:{opts}')).toBeLessThanOrEqual(5_000);
    await lock.release();
    await app.close();
  });

  it('forRootAsync with useFactory, inject and imports', async () => {
    @Injectable()
    class Config {
      get(name: string): string {
        return name === 'REDIS_URL' ? server.url : '';
      }
    }
    @Module({ providers: [Config], exports: [Config] })
    class ConfigModule {}

    @Module({
      imports: [
        LockModule.forRootAsync({
          imports: [ConfigModule],
          inject: [Config],
          useFactory: (config: Config) => ({ redis: config.get('REDIS_URL'), ttl: 10_000 }),
        }),
      ],
    })
    class AppModule {}
    const app = await (await Test.createTestingModule({ imports: [AppModule] }).compile()).init();
    const lock = await app.get(LockService).acquire('async:factory');
    expect(await redis.pttl('lock:{async:factory}')).toBeLessThanOrEqual(10_000);
    await lock.release();
    await app.close();
  });

  it('forRootAsync with useClass and with useExisting', async () => {
    @Injectable()
    class LockConfig implements LockOptionsFactory {
      createLockOptions(): LockModuleOptions {
        return { redis: server.url, prefix: 'cls:' };
      }
    }
    @Module({ providers: [LockConfig], exports: [LockConfig] })
    class LockConfigModule {}

    for (const asyncOptions of [
      { useClass: LockConfig },
      { imports: [LockConfigModule], useExisting: LockConfig },
    ]) {
      @Module({ imports: [LockModule.forRootAsync(asyncOptions)] })
      class AppModule {}
      const app = await (await Test.createTestingModule({ imports: [AppModule] }).compile()).init();
      const lock = await app.get(LockService).acquire('async:class');
      expect(await redis.exists('cls:{async:class}')).toBe(1);
      await lock.release();
      await app.close();
    }
  });

  it('isGlobal makes LockService injectable in modules that do not import LockModule', async () => {
    @Injectable()
    class Billing {
      constructor(readonly locks: LockService) {}
    }
    @Module({ providers: [Billing] })
    class BillingModule {}
    @Module({ imports: [LockModule.forRoot({ redis: server.url, isGlobal: true }), BillingModule] })
    class AppModule {}
    const app = await (await Test.createTestingModule({ imports: [AppModule] }).compile()).init();
    expect(app.get(Billing).locks).toBeInstanceOf(LockService);
    await app.close();
  });

  describe('rejects an isGlobal that is not a boolean with a LockConfigError naming the value', () => {
    const values: Array<[string, unknown, RegExp]> = [
      ["'yes'", 'yes', /"isGlobal": "yes"; expected true or false/],
      ['1', 1, /"isGlobal": 1; expected true or false/],
      ['null', null, /"isGlobal": null; expected true or false/],
      ["'false' (a string, which would be truthy)", 'false', /"isGlobal": "false"; expected true or false/],
    ];

    it.each(values)('forRoot({ isGlobal: %s })', async (_name, value, message) => {
      const error = await bootstrapError({ redis: server.url, isGlobal: value });
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(message);
    });

    it.each(values)('forRootAsync({ isGlobal: %s })', (_name, value, message) => {
      let error: unknown;
      try {
        LockModule.forRootAsync({ useFactory: () => ({ redis: server.url }), isGlobal: value as boolean });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(LockConfigError);
      expect((error as Error).message).toMatch(message);
    });

    it('isGlobal: false and an absent isGlobal register the module locally', () => {
      expect(LockModule.forRoot({ redis: server.url, isGlobal: false }).global).toBe(false);
      expect(LockModule.forRoot({ redis: server.url }).global).toBe(false);
      expect(LockModule.forRootAsync({ useFactory: () => ({ redis: server.url }) }).global).toBe(false);
      expect(LockModule.forRoot({ redis: server.url, isGlobal: true }).global).toBe(true);
    });
  });

  it('refuses isGlobal returned from an async factory, where it could not take effect', async () => {
    @Module({ imports: [LockModule.forRootAsync({ useFactory: () => ({ redis: server.url, isGlobal: true }) as LockModuleOptions })] })
    class AppModule {}
    const error = await Test.createTestingModule({ imports: [AppModule] })
      .compile()
      .then((m) => m.init())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(LockConfigError);
    expect((error as Error).message).toMatch(/forRootAsync\(\{ isGlobal: true/);
  });

  it('app.close() releases held locks and closes the connections it created', async () => {
    const connectedClients = async () => Number((await redis.info('clients')).match(/connected_clients:(\d+)/)?.[1]);
    const other = await startLockApp({ redis: server.url });
    const app = await startLockApp({ redis: server.url });
    const locks = app.locks;
    // Waiting once makes the app open its lazily created release subscriber as well.
    const blocker = await other.locks.acquire('shutdown:blocker');
    await expect(locks.acquire('shutdown:blocker', { wait: 50 })).rejects.toThrow('still busy');
    await blocker.release();
    const lock = await locks.acquire(['shutdown:1', 'shutdown:2']);
    const waiting = other.locks.acquire('shutdown:1', { wait: 60_000 });
    await eventually(() => other.locks.leaseStats.waiters === 1, 10_000, 'the other app to wait');
    const before = await connectedClients();

    await app.close();

    expect(lock.signal.aborted).toBe(true);
    const handedOver = await waiting; // freed by the shutdown, not by the lease running out
    expect(await redis.exists('lock:{shutdown:2}')).toBe(0);
    await eventually(async () => (await connectedClients()) === before - 2, 10_000, 'both connections to close');
    await expect(locks.acquire('after')).rejects.toBeInstanceOf(LockUnavailableError);
    await handedOver.release();
    await other.close();
  });

  it('never closes a client passed in, but releases its locks on shutdown', async () => {
    const mine = server.client();
    const app = await startLockApp({ redis: mine });
    await app.locks.acquire('shared-client');
    await app.close();
    expect(mine.status).toBe('ready');
    expect(await mine.exists('lock:{shared-client}')).toBe(0);
    await mine.quit();
  });
});
