import 'reflect-metadata';
import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

// One instance per process; start several (PORT=3000, 3001...) against the same REDIS_URL.
const app = await NestFactory.create(AppModule.forRoot());
// SIGTERM / SIGINT: stop the cron jobs, release held locks, close the Redis connections.
app.enableShutdownHooks();

const port = Number(app.get(ConfigService).get<string>('PORT') ?? 3000);
await app.listen(port);
console.log(`Sample app listening on http://127.0.0.1:${port} (pid ${process.pid})`);
