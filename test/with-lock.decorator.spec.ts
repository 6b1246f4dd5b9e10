import { Controller, Get, HttpException, HttpStatus, Injectable, Module, Param, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { MessagePattern } from '@nestjs/microservices';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Redis } from 'ioredis';
import { Observable, Subject } from 'rxjs';
import { currentLock, LockConfigError, LockKeyError, LockModule, LockService, WithLock } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { eventually } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';

/** A promise the test resolves by hand: lets a handler hold its lock until the test says so. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

const gates = new Map<string, ReturnType<typeof gate>>();
const entered = new Set<string>();

@Controller('orders')
class OrdersController {
  @Post(':id/pay')
  @WithLock('order:<id>', { wait: 0 })
  async pay(@Param('id') id: string): Promise<{ paid: string }> {
    entered.add(id);
    await gates.get(id)?.wait;
    return { paid: id };
  }

  @WithLock('refund:<id>', { wait: 0 })
  @Post(':id/refund')
  async refund(@Param('id') id: string): Promise<{ refunded: string }> {
    entered.add(`refund:${id}`);
    await gates.get(`refund:${id}`)?.wait;
    return { refunded: id };
  }

  @Get(':id/forbidden')
  @WithLock('order:<id>')
  forbidden(@Param('id') id: string): never {
    throw new HttpException(`no access to ${id}`, HttpStatus.FORBIDDEN);
  }
}

interface ChargeDto {
  customer: { id: string };
}

@Injectable()
class Billing {
  readonly name = 'billing';
  calls: string[] = [];
  constructor(readonly locks: LockService) {}

  @WithLock('invoice:<0>')
  async close(invoiceId: string): Promise<string> {
    this.calls.push(`close:${invoiceId}`);
    return `${this.name} closed ${invoiceId} locked=${await this.locks.isLocked(`invoice:${invoiceId}`)}`;
  }

  @WithLock('customer:<dto.customer.id>', { wait: 0 })
  async charge(dto: ChargeDto): Promise<boolean> {
    return this.locks.isLocked(`customer:${dto.customer.id}`);
  }

  @WithLock((a: string, b: string) => [`account:${a}`, `account:${b}`])
  async transfer(a: string, b: string, amount: number): Promise<boolean[]> {
    return Promise.all([this.locks.isLocked(`account:${a}`), this.locks.isLocked(`account:${b}`), Promise.resolve(amount > 0)]);
  }

  @WithLock(['pair:<0>', 'pair:<1>'])
  async pair(a: number, b: boolean): Promise<boolean> {
    return (await this.locks.isLocked(`pair:${a}`)) && (await this.locks.isLocked(`pair:${b}`));
  }

  // @ts-expect-error A sync method under @WithLock does not type-check (it returns a Promise); kept to test untyped callers.
  @WithLock('sync:<id>')
  syncWork(id: string): string {
    this.calls.push(`sync:${id}`);
    return `sync ${id}`;
  }

  @WithLock('job:cleanup', { wait: 0, onBusy: 'skip' })
  async cleanup(): Promise<string | undefined> {
    this.calls.push('cleanup');
    return 'cleaned';
  }

  @Cron('*/10 * * * * *', { name: 'billing-cleanup' })
  @WithLock('job:cron', { wait: 0, onBusy: 'skip' })
  async cronJob(): Promise<void> {
    this.calls.push('cron');
  }

  @WithLock('job:pattern')
  @MessagePattern({ cmd: 'sum' })
  async sum(data: number[]): Promise<number> {
    return data.reduce((a, b) => a + b, 0);
  }

  @WithLock('stream:<id>')
  stream(id: string, source: Subject<number>): Observable<number> {
    this.calls.push(`stream:${id}`);
    return source.asObservable();
  }

  @WithLock('report:<id>', { ttl: 5_000 })
  async report(id: string): Promise<{ keys: readonly string[]; fence: number; aborted: boolean } | undefined> {
    const lock = currentLock();
    return lock && { keys: lock.keys, fence: lock.fence, aborted: lock.signal.aborted };
  }

  @WithLock('stream-fails:<id>')
  failingStream(id: string): Observable<number> {
    throw new Error(`cannot stream ${id}`);
  }

  @WithLock('counter')
  async increment(redis: Redis): Promise<void> {
    // A deliberately non-atomic read-modify-write: only the lock keeps it exact.
    const value = Number(ownerOf(await redis.get('counter:value')));
    await new Promise((resolve) => setImmediate(resolve));
    await redis.set('counter:value', value + 1);
  }
}

@Module({ controllers: [OrdersController], providers: [Billing] })
class FeatureModule {}

describe('@WithLock', () => {
  let server: RedisServer;
  let redis: Redis;

  async function createApp(adapter?: 'fastify'): Promise<INestApplication> {
    @Module({ imports: [LockModule.forRoot({ redis: server.url, isGlobal: true }), ScheduleModule.forRoot(), FeatureModule] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app =
      adapter === 'fastify'
        ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter())
        : moduleRef.createNestApplication();
    await app.listen(0, '127.0.0.1');
    if (adapter === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
    return app;
  }

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = server.client();
  });
  afterAll(async () => {
    await redis?.quit();
    await stopAllRedisServers();
  });

  describe.each(['express', 'fastify'] as const)('on %s controller handlers', (adapter) => {
    let app: INestApplication;
    let base: string;
    beforeAll(async () => {
      app = await createApp(adapter === 'fastify' ? 'fastify' : undefined);
      base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    });
    afterAll(() => app?.close());

    async function concurrent(route: (id: string) => string, firstId: string, secondId: string, gateName: (id: string) => string) {
      const g = gate();
      gates.set(gateName(firstId), g);
      const first = fetch(`${base}${route(firstId)}`, { method: 'POST' });
      await eventually(() => entered.has(gateName(firstId)), 10_000, 'the first request to hold the lock');
      const secondGate = gate();
      gates.set(gateName(secondId), secondGate);
      const second = fetch(`${base}${route(secondId)}`, { method: 'POST' });
      if (firstId !== secondId) await eventually(() => entered.has(gateName(secondId)), 10_000, 'the second request');
      const secondResponse = firstId === secondId ? await second : undefined;
      g.open();
      secondGate.open();
      const responses = [await first, secondResponse ?? (await second)];
      entered.clear();
      gates.clear();
      return responses;
    }

    it('answers one 2xx and one 409 naming the key for the same id (decorator below @Post)', async () => {
      const id = `${adapter}-same`;
      const [first, second] = await concurrent((i) => `/orders/${i}/pay`, id, id, (i) => i);
      expect(first.status).toBe(201);
      expect(await first.json()).toEqual({ paid: id });
      expect(second.status).toBe(409);
      const body = (await second.json()) as { message: string };
      expect(body).toMatchObject({ statusCode: 409, keys: [`order:${id}`] });
      expect(body.message).toContain(`order:${id}`);
      // The holder's remaining lease (default ttl 30 s), in whole seconds.
      const retryAfter = Number(second.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(30);
      expect(first.headers.get('retry-after')).toBeNull();
    });

    it('lets different ids run at the same time', async () => {
      const [first, second] = await concurrent((i) => `/orders/${i}/pay`, `${adapter}-a`, `${adapter}-b`, (i) => i);
      expect([first.status, second.status]).toEqual([201, 201]);
    });

    it('works with the decorator above @Post too', async () => {
      const id = `${adapter}-refund`;
      const [first, second] = await concurrent((i) => `/orders/${i}/refund`, id, id, (i) => `refund:${i}`);
      expect([first.status, second.status]).toEqual([201, 409]);
    });

    it("passes the method's own HttpException through unchanged and releases the lock", async () => {
      const response = await fetch(`${base}/orders/${adapter}-x/forbidden`);
      expect(response.status).toBe(403);
      expect(((await response.json()) as { message: string }).message).toBe(`no access to ${adapter}-x`);
      expect(await app.get(LockService).isLocked(`order:${adapter}-x`)).toBe(false);
    });
  });

  describe('on plain providers', () => {
    let app: INestApplication;
    let billing: Billing;
    beforeAll(async () => {
      app = await createApp();
      billing = app.get(Billing);
    });
    afterAll(() => app?.close());

    it('resolves positional placeholders, keeps `this`, and frees the key afterwards', async () => {
      expect(await billing.close('inv-1')).toBe('billing closed inv-1 locked=true');
      expect(await redis.exists('lock:{invoice:inv-1}')).toBe(0);
    });

    it('gives the method its lock through currentLock(), and nothing outside', async () => {
      const seen = await billing.report('r1');
      expect(seen).toMatchObject({ keys: ['report:r1'], aborted: false });
      expect(seen?.fence).toBeGreaterThan(0);
      expect(currentLock()).toBeUndefined();
    });

    it('resolves a path into an argument', async () => {
      expect(await billing.charge({ customer: { id: 'c-9' } })).toBe(true);
    });

    it('locks every key of the typed function form and of an array of templates', async () => {
      expect(await billing.transfer('a1', 'a2', 5)).toEqual([true, true, true]);
      expect(await billing.pair(7, false)).toBe(true);
    });

    it('rejects (never throws synchronously) with LockKeyError for an unusable value, locking nothing', async () => {
      let promise: Promise<unknown> | undefined;
      expect(() => {
        promise = billing.close(undefined as unknown as string);
      }).not.toThrow();
      await expect(promise).rejects.toBeInstanceOf(LockKeyError);
      await expect(billing.charge({ customer: {} } as ChargeDto)).rejects.toThrow(/customer\.id/);
      await expect(billing.close('' as string)).rejects.toBeInstanceOf(LockKeyError);
      // Not even a fence counter was created for the bad values.
      expect((await redis.keys('lock:{invoice:*')).sort()).toEqual([]);
      expect(await redis.keys('lock:{customer:*')).toEqual([]);
    });

    it('makes a sync method asynchronous and still locks it', async () => {
      const result = billing.syncWork('s1');
      expect(result).toBeInstanceOf(Promise);
      expect(await result).toBe('sync s1');
    });

    it("onBusy: 'skip' resolves undefined without running the body while another holder has the key", async () => {
      const holder = await app.get(LockService).acquire('job:cleanup');
      billing.calls = [];
      expect(await billing.cleanup()).toBeUndefined();
      expect(billing.calls).toEqual([]);
      await holder.release();
      expect(await billing.cleanup()).toBe('cleaned');
      expect(billing.calls).toEqual(['cleanup']);
    });

    it('keeps @Cron and @MessagePattern metadata, name and length on the wrapped methods', async () => {
      const registry = app.get(SchedulerRegistry);
      expect(registry.getCronJob('billing-cleanup')).toBeDefined();
      expect(Reflect.getMetadata('microservices:pattern', Billing.prototype.sum)).toEqual([{ cmd: 'sum' }]);
      expect(Billing.prototype.transfer.name).toBe('transfer');
      expect(Billing.prototype.transfer.length).toBe(3);
      expect(Billing.prototype.close.name).toBe('close');
      expect(await billing.sum([1, 2, 3])).toBe(6);
      await billing.cronJob();
      expect(billing.calls).toContain('cron');
    });

    it('holds the lock of an Observable method from subscribe until complete', async () => {
      const source = new Subject<number>();
      const values: number[] = [];
      const observable = billing.stream('o1', source);
      expect(await redis.exists('lock:{stream:o1}')).toBe(0); // nothing happens before subscribe
      let completed = false;
      observable.subscribe({ next: (v) => values.push(v), complete: () => (completed = true) });
      await eventually(async () => (await redis.exists('lock:{stream:o1}')) === 1, 10_000, 'the lock on subscribe');
      await eventually(() => billing.calls.includes('stream:o1'), 10_000, 'the method to run');
      source.next(1);
      source.next(2);
      expect(await redis.exists('lock:{stream:o1}')).toBe(1);
      source.complete();
      expect(completed).toBe(true);
      await eventually(async () => (await redis.exists('lock:{stream:o1}')) === 0, 10_000, 'release after complete');
      expect(values).toEqual([1, 2]);
    });

    it('errors the Observable, and releases, when the method throws before returning it', async () => {
      const error = await new Promise<unknown>((resolve) => billing.failingStream('f1').subscribe({ error: resolve }));
      expect(String(error)).toContain('cannot stream f1');
      await eventually(async () => (await redis.exists('lock:{stream-fails:f1}')) === 0, 10_000, 'release after the throw');
    });

    it('releases the lock of an Observable method on unsubscribe', async () => {
      const source = new Subject<number>();
      const subscription = billing.stream('o2', source).subscribe();
      await eventually(async () => (await redis.exists('lock:{stream:o2}')) === 1, 10_000, 'the lock on subscribe');
      await eventually(() => billing.calls.includes('stream:o2'), 10_000, 'the method to run');
      subscription.unsubscribe();
      await eventually(async () => (await redis.exists('lock:{stream:o2}')) === 0, 10_000, 'release after unsubscribe');
    });
  });

  it('fails at class definition for a placeholder that names no parameter', () => {
    expect(() => {
      class Broken {
        @WithLock('order:<orderId>')
        async pay(id: string): Promise<string> {
          return id;
        }
      }
      return Broken;
    }).toThrow(LockKeyError);
    expect(() => {
      class AlsoBroken {
        @WithLock('order:<id>', { onBusy: 'ignore' as 'throw' })
        async pay(id: string): Promise<string> {
          return id;
        }
      }
      return AlsoBroken;
    }).toThrow(LockConfigError);
  });

  it('tells the user to import LockModule when no app bound the instance', async () => {
    const loose = new Billing(undefined as unknown as LockService);
    await expect(loose.close('x')).rejects.toThrow(/import LockModule\.forRoot/);
  });

  it('keeps a non-atomic read-modify-write exact across three apps with separate connections', async () => {
    const apps = await Promise.all([createApp(), createApp(), createApp()]);
    const clients = apps.map(() => server.client());
    await redis.set('counter:value', 0);
    const perApp = 40;
    await Promise.all(
      apps.flatMap((app, i) => Array.from({ length: perApp }, () => app.get(Billing).increment(clients[i]))),
    );
    expect(Number(ownerOf(await redis.get('counter:value')))).toBe(apps.length * perApp);
    await Promise.all(clients.map((c) => c.quit()));
    await Promise.all(apps.map((app) => app.close()));
  });
});
