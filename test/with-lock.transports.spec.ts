import { Controller, Get, Injectable, Module, Param } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Test } from '@nestjs/testing';
import { ClientProxyFactory, MessagePattern, Payload, Transport, type ClientProxy, type MicroserviceOptions } from '@nestjs/microservices';
import { SubscribeMessage, WebSocketGateway, MessageBody } from '@nestjs/websockets';
import { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { LockModule, LockService, WithLock } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';

@Controller()
class SumController {
  constructor(private readonly locks: LockService) {}

  @MessagePattern({ cmd: 'sum' })
  @WithLock('sum:<data.account>')
  async sum(@Payload() data: { account: string; values: number[] }): Promise<{ total: number; locked: boolean }> {
    const locked = await this.locks.isLocked(`sum:${data.account}`);
    return { total: data.values.reduce((a, b) => a + b, 0), locked };
  }

  @WithLock('busy:<data>', { wait: 0 })
  @MessagePattern('busy')
  async busy(@Payload() data: string): Promise<string> {
    return data;
  }
}

@WebSocketGateway()
@Injectable()
class ChatGateway {
  constructor(private readonly locks: LockService) {}

  @SubscribeMessage('join')
  @WithLock('room:<body.room>')
  async join(@MessageBody() body: { room: string }): Promise<boolean> {
    return this.locks.isLocked(`room:${body.room}`);
  }
}

@Controller('docs')
class DocumentedController {
  @WithLock('doc:<id>')
  @Get(':id')
  @ApiOperation({ summary: 'Read a document under its lock' })
  @ApiOkResponse({ description: 'the document' })
  async above(@Param('id') id: string): Promise<string> {
    return id;
  }

  @Get('other/:id')
  @ApiOperation({ summary: 'Decorator below Swagger' })
  @WithLock('doc:<id>')
  async below(@Param('id') id: string): Promise<string> {
    return id;
  }
}

describe('@WithLock on microservice handlers and gateways', () => {
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

  it('runs a @MessagePattern handler under the lock over a real TCP transport', async () => {
    @Module({ imports: [LockModule.forRoot({ redis: server.url, isGlobal: true })], controllers: [SumController] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestMicroservice<MicroserviceOptions>({
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port: 0 },
    });
    await app.listen();
    const address = (app as unknown as { serverInstance: { server: { address(): { port: number } } } }).serverInstance.server.address();
    const client: ClientProxy = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port: address.port } });
    try {
      const reply = await firstValueFrom(client.send({ cmd: 'sum' }, { account: 'acc-1', values: [1, 2, 3] }));
      expect(reply).toEqual({ total: 6, locked: true });
      expect(await redis.exists('lock:{sum:acc-1}')).toBe(0);

      const holder = await app.get(LockService).acquire('busy:x');
      await expect(firstValueFrom(client.send('busy', 'x'))).rejects.toMatchObject({ status: 'error' });
      await holder.release();
      expect(await firstValueFrom(client.send('busy', 'x'))).toBe('x');
    } finally {
      client.close();
      await app.close();
    }
  });

  it('runs a gateway @SubscribeMessage handler under the lock, keeping its metadata', async () => {
    @Module({ imports: [LockModule.forRoot({ redis: server.url, isGlobal: true })], providers: [ChatGateway] })
    class AppModule {}
    const app = await (await Test.createTestingModule({ imports: [AppModule] }).compile()).init();
    const gateway = app.get(ChatGateway);
    expect(Reflect.getMetadata('message', ChatGateway.prototype.join)).toBe('join');
    expect(await gateway.join({ room: 'lobby' })).toBe(true);
    expect(await redis.exists('lock:{room:lobby}')).toBe(0);
    await app.close();
  });

  it('keeps Swagger operation metadata in either decorator order', async () => {
    @Module({ imports: [LockModule.forRoot({ redis: server.url })], controllers: [DocumentedController] })
    class AppModule {}
    const app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication();
    await app.init();
    const document = SwaggerModule.createDocument(app, new DocumentBuilder().build());
    expect(document.paths['/docs/{id}']?.get?.summary).toBe('Read a document under its lock');
    expect(document.paths['/docs/{id}']?.get?.responses?.['200']).toMatchObject({ description: 'the document' });
    expect(document.paths['/docs/other/{id}']?.get?.summary).toBe('Decorator below Swagger');
    await app.close();
  });
});
