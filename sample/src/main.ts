import 'reflect-metadata';
import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

const app = await NestFactory.create(AppModule);
// SIGTERM / SIGINT: stop the cron jobs, release held locks, close the Redis connections.
app.enableShutdownHooks();

const port = Number(app.get(ConfigService).get<string>('PORT') ?? 3000);
await app.listen(port);
console.log(`Sample app listening on http://127.0.0.1:${port} (pid ${process.pid})`);
