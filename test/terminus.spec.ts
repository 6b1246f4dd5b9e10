import { Controller, Get, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { LockModule, LockService, type LockModuleOptions } from '../lib/index.js';
import { LockHealthIndicator } from '../lib/terminus/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly locks: LockHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.locks.isHealthy('locks', { timeout: 500 })]);
  }
}

async function healthApp(options: LockModuleOptions) {
  @Module({ imports: [TerminusModule, LockModule.forRoot(options)], controllers: [HealthController], providers: [LockHealthIndicator] })
  class AppModule {}
  const app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  const url = `${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/health`;
  return { app, get: async () => fetch(url).then(async (r) => ({ status: r.status, body: (await r.json()) as any })) };
}

describe('LockHealthIndicator (@nestjs/terminus)', () => {
  afterAll(() => stopAllRedisServers());

  it('reports up with round-trip time, and down once Redis is stopped', async () => {
    const server = await RedisServer.start();
    const { app, get } = await healthApp({ redis: { host: server.host, port: server.port, maxRetriesPerRequest: 1 } });
    const up = await get();
    expect(up.status).toBe(200);
    expect(up.body.info.locks.status).toBe('up');
    expect(up.body.info.locks.nodes[0]).toMatchObject({ node: `${server.host}:${server.port}`, up: true });
    expect(typeof up.body.info.locks.nodes[0].rttMs).toBe('number');
    // This instance's own counts, as extra details: what it holds, who waits.
    const locks = app.get(LockService);
    expect(up.body.info.locks.instance).toEqual({ id: locks.instanceId, held: 0, waiting: 0 });
    const held = await locks.acquire('health:held');
    expect((await get()).body.info.locks.instance).toEqual({ id: locks.instanceId, held: 1, waiting: 0 });
    await held.release();

    await server.stop();
    const down = await get();
    expect(down.status).toBe(503);
    expect(down.body.error.locks.status).toBe('down');
    expect(down.body.error.locks.nodes[0].up).toBe(false);
    await app.close();
  });

  it('reports a Redlock quorum: up with 2 of 3 masters, down with 1 of 3', async () => {
    const masters = await RedisServer.startMany(3);
    const { app, get } = await healthApp({ redlock: masters.map((m) => ({ host: m.host, port: m.port, maxRetriesPerRequest: 1 })) });
    expect((await get()).body.info.locks).toMatchObject({ status: 'up', quorum: 2 });
    await masters[0].stop();
    const degraded = await get();
    expect(degraded.status).toBe(200);
    expect(degraded.body.info.locks.nodes.filter((n: { up: boolean }) => n.up)).toHaveLength(2);
    await masters[1].stop();
    expect((await get()).status).toBe(503);
    await app.close();
  });
});
