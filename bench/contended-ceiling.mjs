#!/usr/bin/env node
/**
 * How close C (one contended key) and F (a semaphore with 4 permits) come to what any Redis lock
 * could reach on this machine. Run by hand after `npm run build`:
 *
 *   node bench/contended-ceiling.mjs [--rounds 5]
 *
 * In C and F a worker holds for a 1 ms sleep, so one key changes hands at most once per
 * (sleep + handoff). A lock whose handoff costs less than one round trip to Redis cannot be
 * safe: the next holder must be written in Redis before it may act. "ceiling" is such an ideal
 * lock: an in-process mutex (or semaphore) whose release costs exactly one Redis round trip (a
 * PING on its own connection) and then hands over at once, with no script, no fence, no
 * notification. It runs the very scenario functions `npm run bench` runs, in rotating rounds with
 * ours and the peer each target is measured against (redlock for C, redis-semaphore for F), so
 * the printed ratios say how much of the way to the ceiling we are, and whether the target ratio
 * fits under the ceiling at all on this machine at this moment.
 *
 * Prints a report; changes nothing. Figures move by ±20 % between runs on a shared VM.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { LockModule, LockService } from 'nestjs-redis-lock';
import { oursAdapter, redlockAdapter, semaphoreAdapter } from './adapters.mjs';
import { median, rotate } from './measure.mjs';
import { RedisServer } from './redis-server.mjs';
import { C_WAIT_MS, contended, semaphoreContended } from './scenarios.mjs';

const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 5;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds takes a positive integer; got ${process.argv[roundsArg + 1]}`);

/** `permits` holders at once; a release is one PING, after which the first waiter holds at once. */
function ceilingAdapter(client, permits) {
  let holders = 0;
  const waiters = [];
  const acquire = () => {
    if (holders < permits) {
      holders += 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => waiters.push(resolve));
  };
  return {
    name: 'ceiling (1 round trip per handoff)',
    acquireWait: acquire,
    acquirePermit: acquire,
    async release() {
      await client.ping();
      const next = waiters.shift();
      if (next) next(true);
      else holders -= 1;
    },
  };
}

async function main() {
  const server = await RedisServer.start();
  // The peers' connection, and the ceiling's own (its PINGs wait behind nothing else).
  const clients = [new Redis(server.url), new Redis(server.url)];
  class CeilingModule {}
  Module({ imports: [LockModule.forRoot({ redis: server.url })] })(CeilingModule);
  const app = await NestFactory.createApplicationContext(CeilingModule, { logger: ['error', 'warn'] });
  try {
    await Promise.all(clients.map((c) => c.ping()));
    const ours = oursAdapter(app.get(LockService));
    const scenarios = [
      ...[16, 32].map((workers) => ({
        name: `C, ${workers} workers, one key (target: ours ≥ 3.5× redlock)`,
        peer: redlockAdapter(clients[0]),
        ceiling: ceilingAdapter(clients[1], 1),
        run: (adapter, round) => contended(adapter, { workers, total: 500, key: `ceiling:c${workers}:${round}` }),
        target: 3.5,
      })),
      {
        name: 'F, 16 workers, permits 4 (target: ours ≥ 1.5× redis-semaphore)',
        peer: semaphoreAdapter(clients[0]),
        ceiling: ceilingAdapter(clients[1], 4),
        run: (adapter, round) => semaphoreContended(adapter, { workers: 16, permits: 4, total: 800, key: `ceiling:f:${round}` }),
        target: 1.5,
      },
    ];
    for (const scenario of scenarios) {
      const libraries = [ours, scenario.peer, scenario.ceiling];
      const perRound = new Map(libraries.map((lib) => [lib.name, []]));
      for (let round = 0; round < ROUNDS; round++) {
        for (const lib of rotate(libraries, round)) {
          const result = await scenario.run(lib, round);
          if (result.failures > 0 || result.overlaps > 0) throw new Error(`${lib.name}: ${result.failures} failures, ${result.overlaps} overlaps`);
          perRound.get(lib.name).push(result.acqPerSec);
        }
      }
      const acq = (lib) => median(perRound.get(lib.name));
      const [o, p, c] = [acq(ours), acq(scenario.peer), acq(scenario.ceiling)];
      console.log(`\n${scenario.name}: ${ROUNDS} rotating rounds, medians (wait ${C_WAIT_MS} ms)`);
      for (const lib of libraries) console.log(`  ${lib.name.padEnd(36)} ${String(Math.round(acq(lib))).padStart(6)} acq/s   rounds: ${perRound.get(lib.name).map(Math.round).join(', ')}`);
      console.log(`  ours / ${scenario.peer.name}: ${(o / p).toFixed(2)}×   ceiling / ${scenario.peer.name}: ${(c / p).toFixed(2)}×   ours / ceiling: ${(o / c).toFixed(2)}`);
      console.log(`  the target needs ours at ${((scenario.target * p) / c).toFixed(2)} of the ceiling`);
    }
  } finally {
    await app.close();
    clients.forEach((c) => c.disconnect());
    await server.stop();
  }
}

await main();
