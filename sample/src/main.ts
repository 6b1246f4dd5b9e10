import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

const port = Number(process.env.PORT ?? 3000);

const app = await NestFactory.create(AppModule);
app.enableShutdownHooks(); // SIGTERM/SIGINT: release held locks and close Redis connections
await app.listen(port);
console.log(`Sample app listening on http://127.0.0.1:${port} (pid ${process.pid})`);
