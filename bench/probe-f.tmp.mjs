import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Module } from '@nestjs/common';
import { LockModule, LockService } from 'nestjs-redis-lock';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { RedisServer } from './redis-server.mjs';
const server = await RedisServer.start();
class M {}
Module({ imports: [LockModule.forRoot({ redis: server.url })] })(M);
const app = await NestFactory.createApplicationContext(M, { logger: ['error'] });
const locks = app.get(LockService);
const mode = process.argv[2] ?? 'permits';
const N = Number(process.env.N ?? 1600); let tickets = N; const sl = [], rl = [], al=[];
const worker = async () => {
  while (tickets-- > 0) {
    const a = performance.now();
    const lock = mode === 'permits' ? await locks.acquire('f', { permits: 4, wait: 30000 }) : await locks.acquire('c', { wait: 30000 });
    const b = performance.now();
    await sleep(1);
    const c = performance.now();
    await lock.release();
    const d = performance.now();
    al.push(b-a); sl.push(c - b); rl.push(d - c);
    await sleep(5);
  }
};
const cpu0 = process.cpuUsage(); const t0 = performance.now();
await Promise.all(Array.from({ length: 16 }, worker));
const t1 = performance.now(); const cpu = process.cpuUsage(cpu0); console.log("user", (cpu.user/N).toFixed(0), "sys", (cpu.system/N).toFixed(0), "cpu % of wall", ((cpu.user + cpu.system) / 10 / (t1 - t0)).toFixed(1), "cpu µs per acq", ((cpu.user + cpu.system) / N).toFixed(0));
const q = (xs, p) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(p * (s.length - 1))].toFixed(3); };
const mean = (xs) => (xs.reduce((x, y) => x + y, 0) / xs.length).toFixed(3);
console.log(mode, 'acq/s', (N / (t1 - t0) * 1000).toFixed(0), 'sleep mean/p50/p99', mean(sl), q(sl, .5), q(sl, .99), 'release mean/p50/p99', mean(rl), q(rl, .5), q(rl, .99), 'acq mean', mean(al));
await app.close(); await server.stop();
