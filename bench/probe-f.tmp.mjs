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
const { Redis } = await import('ioredis'); const admin = new Redis(server.url); await admin.config('RESETSTAT'); const cpu0 = process.cpuUsage(); const t0 = performance.now();
await Promise.all(Array.from({ length: 16 }, worker));
const t1 = performance.now(); const cpu = process.cpuUsage(cpu0); console.log("user", (cpu.user/N).toFixed(0), "sys", (cpu.system/N).toFixed(0), "cpu % of wall", ((cpu.user + cpu.system) / 10 / (t1 - t0)).toFixed(1), "cpu µs per acq", ((cpu.user + cpu.system) / N).toFixed(0));
const q = (xs, p) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(p * (s.length - 1))].toFixed(3); };
const mean = (xs) => (xs.reduce((x, y) => x + y, 0) / xs.length).toFixed(3);
console.log(mode, 'acq/s', (N / (t1 - t0) * 1000).toFixed(0), 'sleep mean/p50/p99', mean(sl), q(sl, .5), q(sl, .99), 'release mean/p50/p99', mean(rl), q(rl, .5), q(rl, .99), 'acq mean', mean(al));
const info = await admin.info('commandstats'); let us = 0; for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)) { if (m[1] === 'evalsha' || m[1] === 'eval' || m[1] === 'publish' || m[1]==='get' || m[1]==='set') console.log(m[1], m[2], m[3]); if (!['evalsha','eval'].includes(m[1]) || true) {} } const ev = [...info.matchAll(/cmdstat_(evalsha|eval|set|get|del|publish):calls=(\d+),usec=(\d+)/g)]; const top = ev.filter(m => ['evalsha','eval'].includes(m[1])).reduce((a, m) => a + Number(m[3]), 0); console.log('script usec per acq', (top / N).toFixed(1)); const cpuInfo = await admin.info('cpu'); console.log(cpuInfo.split('\n').filter(l => l.startsWith('used_cpu')).join(' ')); admin.disconnect(); await app.close(); await server.stop();
