#!/usr/bin/env node
/**
 * "A cold": one fresh process, one library, its first N serial acquire+release pairs on random
 * keys (timed after the library's setup and a connected client, so process start and imports are
 * not counted, but nothing is warmed up). Prints {opsPerSec, p50, p99, firstMs} as JSON.
 *
 *   node bench/cold.mjs <raw|redis-semaphore|redlock|nestjs-redis-lock> <redis url> <pairs>
 */
import 'reflect-metadata';
import { Redis } from 'ioredis';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LockModule, LockService } from 'nestjs-redis-lock';
import { oursAdapter, rawAdapter, redlockAdapter, semaphoreAdapter } from './adapters.mjs';
import { now, percentile } from './measure.mjs';
import { randomKeys, serialPairs } from './scenarios.mjs';

const [lib, url, pairsArg] = process.argv.slice(2);
const pairs = Number(pairsArg ?? 1000);
let adapter;
let close;
if (lib === 'nestjs-redis-lock') {
  class ColdModule {}
  Module({ imports: [LockModule.forRoot({ redis: url })] })(ColdModule);
  const app = await NestFactory.createApplicationContext(ColdModule, { logger: ['error', 'warn'] });
  adapter = oursAdapter(app.get(LockService));
  close = () => app.close();
  // Connected like the others' pinged clients: one isLocked (an EXISTS, not the lock path).
  await app.get(LockService).isLocked('cold-probe');
} else {
  const client = new Redis(url);
  await client.ping();
  adapter = { raw: rawAdapter, 'redis-semaphore': semaphoreAdapter, redlock: redlockAdapter }[lib]?.(client);
  if (!adapter) throw new Error(`unknown library ${lib}`);
  close = () => client.quit();
}
const keys = randomKeys('cold', pairs);
const t = now();
const first = await adapter.acquire(keys[0]);
await adapter.release(first);
const firstMs = now() - t;
const { elapsed, latencies } = await serialPairs(adapter, keys.slice(1));
const total = elapsed + firstMs;
process.stdout.write(JSON.stringify({ opsPerSec: (pairs / total) * 1000, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), firstMs }));
await close();
