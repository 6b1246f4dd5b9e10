#!/usr/bin/env node
/**
 * What one uncontended acquire+release pair (scenario A) costs, piece by piece, for us and for
 * redis-semaphore (the best peer in A). Run by hand after `npm run build`:
 *
 *   node bench/cost-breakdown.mjs
 *
 * 1. Redis time per call, one call at a time as in A (SLOWLOG with a threshold of 0 records
 *    every command's execution time in µs, also those run inside scripts): both libraries' real
 *    calls, and reference scripts that show what a fenced acquire cannot avoid.
 * 2. Promises created per pair against a real Redis (async_hooks).
 * 3. End to end, in rotating rounds: each library's pairs, and the very commands it sends replayed
 *    on a bare ioredis client (what the commands cost, apart from the library's code); then single
 *    calls one at a time, with the CPU each costs Redis (its process's user+system time, which
 *    SLOWLOG leaves out: reading and parsing the request, writing the reply) and this process.
 * 4. JavaScript per pair with a client that answers at once (no Redis, no socket): the libraries'
 *    own code, without the network. Each in a fresh process, with and without an
 *    AsyncLocalStorage.run() first (on Node 20 that turns on promise hooks for the whole process).
 *
 * Prints a report; changes nothing. Figures move by ±20 % between runs on a shared VM.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { createHook, AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Mutex } from 'redis-semaphore';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LockModule, LockService } from 'nestjs-redis-lock';
import * as scripts from '../dist/stores/redis-scripts.js';
import { oursAdapter, semaphoreAdapter } from './adapters.mjs';
import { RedisServer } from './redis-server.mjs';
import { median } from './measure.mjs';

const SELF = fileURLToPath(import.meta.url);
const PAIRS = 3_000;
const ROUNDS = 8;
const JS_PAIRS = 100_000;

async function lockService(redis) {
  class BreakdownModule {}
  Module({ imports: [LockModule.forRoot({ redis })] })(BreakdownModule);
  const app = await NestFactory.createApplicationContext(BreakdownModule, { logger: ['error'] });
  return { app, locks: app.get(LockService) };
}

// ---------------------------------------------------------------------------------------------
// 4. JavaScript only: a child process per library and setting (`--js ours|sem [--hooks]`)
// ---------------------------------------------------------------------------------------------

const RELEASE_ONE_SHA = createHash('sha1').update(scripts.RELEASE_ONE_SCRIPT).digest('hex');

/** A client that answers every command at once: enough of ioredis for LockService and Mutex. */
function instantClient() {
  let fence = 0;
  const client = {
    status: 'ready',
    isCluster: false,
    options: {},
    on: () => client,
    once: () => client,
    defineCommand() {},
    duplicate: () => client,
    // Our scripts arrive as ioredis Command objects (built by the library, as for a real client).
    sendCommand: (command) => Promise.resolve(command.args[0] === RELEASE_ONE_SHA ? 1 : [1, ++fence]),
    set: () => Promise.resolve('OK'),
    get: () => Promise.resolve(null),
    del: () => Promise.resolve(1),
    exists: () => Promise.resolve(0),
    evalsha: () => Promise.resolve(1),
    quit: () => Promise.resolve('OK'),
    disconnect() {},
  };
  return client;
}

async function jsChild(which, hooks) {
  const client = instantClient();
  let pair;
  let app;
  if (which === 'ours') {
    let locks;
    ({ app, locks } = await lockService(client));
    pair = async (key) => (await locks.acquire(key)).release();
  } else {
    pair = async (key) => {
      const mutex = new Mutex(client, key);
      await mutex.acquire();
      await mutex.release();
    };
  }
  if (hooks) new AsyncLocalStorage().run(true, () => undefined);
  const round = async () => {
    const start = performance.now();
    for (let i = 0; i < JS_PAIRS; i++) await pair(`k:${i}`);
    return ((performance.now() - start) * 1000) / JS_PAIRS;
  };
  await round(); // warm-up
  const rounds = [await round(), await round(), await round()];
  await app?.close();
  process.stdout.write(JSON.stringify(median(rounds)));
  process.exit(0);
}

function jsCost(which, hooks) {
  const args = [SELF, '--js', which, ...(hooks ? ['--hooks'] : [])];
  const out = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`${which}: ${out.stderr}`);
  return Number(out.stdout);
}

// ---------------------------------------------------------------------------------------------
// 1. to 3.: against a private redis-server
// ---------------------------------------------------------------------------------------------

/** Reference scripts: what a fenced acquire cannot do without (KEYS[1] lock, KEYS[2] counter). */
const REFERENCE = {
  'empty script, no arguments': { lua: 'return 1', keys: 0, args: 0 },
  'empty script, 10 keys + 5 arguments (our acquire\'s shape)': { lua: 'return 1', keys: 10, args: 5 },
  'SET PX in a script (1 key, 2 arguments)': { lua: "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1", keys: 1, args: 2 },
  'fenced acquire, nothing else: INCR + SET PX (2 keys, 2 arguments)': {
    lua: "local f = redis.call('INCR', KEYS[2]) redis.call('SET', KEYS[1], ARGV[1] .. ':' .. f, 'PX', ARGV[2]) return {1, f}",
    keys: 2,
    args: 2,
  },
  'same + one EXISTS over the other modes\' 6 keys (8 keys)': {
    lua:
      "if redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]) == 0 then " +
      "local f = redis.call('INCR', KEYS[2]) redis.call('SET', KEYS[1], ARGV[1] .. ':' .. f, 'PX', ARGV[2]) return {1, f} end return 0",
    keys: 8,
    args: 2,
  },
};

async function slowlogged(admin, run) {
  await admin.config('SET', 'slowlog-log-slower-than', '0');
  await admin.config('SET', 'slowlog-max-len', '1000000');
  await admin.slowlog('RESET');
  await run();
  const entries = await admin.slowlog('GET', 1_000_000);
  await admin.config('SET', 'slowlog-log-slower-than', '10000');
  // Commands run inside a script are logged too, by the client "?:0": only top-level calls count
  // here (a script's time includes its inner commands).
  return entries
    .filter(([, , , , client]) => client !== '?:0')
    .map(([, , micros, args]) => ({ micros, command: String(args[0]).toLowerCase(), sha: String(args[1] ?? '') }));
}

const scriptNames = new Map(
  Object.entries(scripts)
    .filter(([, lua]) => typeof lua === 'string')
    .map(([name, lua]) => [createHash('sha1').update(lua).digest('hex'), name]),
);

function perCall(entries) {
  const byCall = new Map();
  for (const { micros, command, sha } of entries) {
    if (command !== 'evalsha' && command !== 'set' && command !== 'eval') continue;
    const name = command === 'set' ? 'SET NX PX' : (scriptNames.get(sha) ?? 'its release script');
    const list = byCall.get(name) ?? [];
    list.push(micros);
    byCall.set(name, list);
  }
  return byCall;
}

/** CPU time (µs) a process has used so far: user + system, from /proc (clock ticks). */
function processCpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticksPerSecond = 100; // USER_HZ on Linux
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond;
}

/**
 * Runs every entry of `runs` for PAIRS calls per round, ROUNDS rounds, rotating who goes first;
 * per entry the median over rounds of: round-trip p50 (µs), Redis CPU per call and this process's
 * CPU per call (µs). An entry takes a fresh key and prepares its call (a replay builds its
 * arguments then), returning a function that makes it: preparing is done for the whole round
 * before anything is timed, so neither figure counts it.
 */
async function rotatingRounds(runs, redisPid) {
  const names = Object.keys(runs);
  const rounds = Object.fromEntries(names.map((name) => [name, { p50: [], redisCpu: [], nodeCpu: [] }]));
  let seq = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of [...names.slice(round % names.length), ...names.slice(0, round % names.length)]) {
      const latencies = new Float64Array(PAIRS);
      const calls = Array.from({ length: PAIRS }, () => runs[name](`e:${seq++}:${randomBytes(6).toString('hex')}`));
      const redis0 = processCpuMicros(redisPid);
      const node0 = process.cpuUsage();
      for (let i = 0; i < PAIRS; i++) {
        const start = performance.now();
        await calls[i]();
        latencies[i] = (performance.now() - start) * 1000;
      }
      const node = process.cpuUsage(node0);
      rounds[name].redisCpu.push((processCpuMicros(redisPid) - redis0) / PAIRS);
      rounds[name].nodeCpu.push((node.user + node.system) / PAIRS);
      rounds[name].p50.push(median(latencies));
    }
  }
  return Object.fromEntries(names.map((name) => [name, Object.fromEntries(Object.entries(rounds[name]).map(([k, v]) => [k, median(v)]))]));
}

/** The commands one acquire+release of `lib` sends (its acquire, then its release), captured from ioredis. */
async function capturePair(lib, key) {
  const captured = [];
  const original = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function capture(command, stream) {
    captured.push([command.name, command.args.map(String)]);
    return original.call(this, command, stream);
  };
  try {
    await lib.release(await lib.acquire(key));
  } finally {
    Redis.prototype.sendCommand = original;
  }
  // Anything else sent meanwhile (a background write) would be replayed as part of the pair.
  if (captured.length !== 2) throw new Error(`expected an acquire and a release, captured ${captured.map(([name]) => name).join(', ')}`);
  return captured;
}

/**
 * Replays captured commands for another key: the key swapped, and each token replaced by a fresh
 * random one of the same length (the same one in every command of the pair).
 */
function replayer(client, captured, key) {
  const tokenLike = (arg) => /^[0-9a-f-]{32,}$/.test(arg);
  return (newKey) => {
    const fresh = new Map();
    const swap = (arg) => {
      if (!fresh.has(arg)) fresh.set(arg, randomBytes(arg.length).toString('hex').slice(0, arg.length));
      return fresh.get(arg);
    };
    // An EVALSHA's first argument is the script's SHA-1, which looks like a token: kept as is.
    const commands = captured.map(([name, args]) => [
      name,
      args.map((a, i) => ((name !== 'evalsha' || i > 0) && tokenLike(a) ? swap(a) : a.replaceAll(key, newKey))),
    ]);
    return async () => {
      for (const [name, args] of commands) await client.call(name, ...args);
    };
  };
}

async function main() {
  const server = await RedisServer.start();
  const admin = new Redis(server.url);
  const { app, locks } = await lockService(server.url);
  const semaphoreClient = new Redis(server.url);
  const libraries = { 'nestjs-redis-lock': oursAdapter(locks), 'redis-semaphore': semaphoreAdapter(semaphoreClient) };
  const out = [];
  try {
    // Warm-up: scripts loaded, code optimized.
    for (const lib of Object.values(libraries)) for (let i = 0; i < 500; i++) await lib.release(await lib.acquire(`w:${i}`));

    out.push(`## 1. Redis time per call, one call at a time (SLOWLOG; median µs of ${PAIRS} pairs)`, '');
    out.push('| library | call | median µs | calls per pair |', '|---|---|---:|---:|');
    const pairTotals = {};
    for (const [name, lib] of Object.entries(libraries)) {
      const entries = await slowlogged(admin, async () => {
        for (let i = 0; i < PAIRS; i++) await lib.release(await lib.acquire(`a:${randomBytes(8).toString('hex')}`));
      });
      let total = 0;
      for (const [call, micros] of perCall(entries)) {
        total += median(micros) * (micros.length / PAIRS);
        out.push(`| ${name} | ${call} | ${median(micros).toFixed(1)} | ${(micros.length / PAIRS).toFixed(2)} |`);
      }
      pairTotals[name] = total;
    }
    out.push('', `Redis time per pair (sum of medians): ${Object.entries(pairTotals).map(([n, t]) => `${n} ${t.toFixed(1)} µs`).join(', ')}.`, '');

    out.push('Reference scripts, same conditions (fresh random key per call):', '');
    out.push('| script | median µs |', '|---|---:|');
    for (const [label, { lua, keys, args }] of Object.entries(REFERENCE)) {
      const sha = await admin.script('LOAD', lua);
      const entries = await slowlogged(admin, async () => {
        for (let i = 0; i < PAIRS; i++) {
          const key = `ref:{${randomBytes(8).toString('hex')}}`;
          const keyList = Array.from({ length: keys }, (_, k) => (k === 0 ? key : k === 1 ? 'ref:fences' : `${key}:${k}`));
          const argList = Array.from({ length: args }, (_, k) => (k === 1 ? '30000' : randomBytes(16).toString('hex')));
          await admin.evalsha(sha, keys, ...keyList, ...argList);
          await admin.del(key);
        }
      });
      const micros = entries.filter((e) => e.command === 'evalsha').map((e) => e.micros);
      out.push(`| ${label} | ${median(micros).toFixed(1)} |`);
    }

    out.push('', '## 2. Promises per pair (async_hooks, real Redis)', '');
    let counting = false;
    let promises = 0;
    const hook = createHook({
      init(_id, type) {
        if (counting && type === 'PROMISE') promises += 1;
      },
    }).enable();
    for (const [name, lib] of Object.entries(libraries)) {
      promises = 0;
      counting = true;
      for (let i = 0; i < 1000; i++) await lib.release(await lib.acquire(`p:${i}`));
      counting = false;
      out.push(`- ${name}: ${(promises / 1000).toFixed(1)}`);
    }
    hook.disable();

    const redisPid = Number(/process_id:(\d+)/.exec(await admin.info('server'))[1]);
    const bare = new Redis(server.url);
    await bare.ping();
    try {
      out.push('', `## 3. End to end, one call at a time (rotating rounds; medians of ${ROUNDS} rounds of ${PAIRS.toLocaleString('en-US')})`, '');
      out.push('Each library, and the commands it sends replayed on a bare ioredis client (same scripts, same argument shapes):', '');
      const pairRuns = {};
      const callRuns = { PING: () => () => bare.ping(), 'SET NX PX': (key) => () => bare.set(key, 'x', 'PX', 30000, 'NX') };
      for (const [name, lib] of Object.entries(libraries)) {
        const captureKey = `capture${name.replace(/[^a-z]/g, '')}`;
        const captured = await capturePair(lib, captureKey);
        pairRuns[`${name}`] = (key) => async () => lib.release(await lib.acquire(key));
        pairRuns[`${name}'s commands, replayed`] = replayer(bare, captured, captureKey);
        // Each of its calls alone (a release replayed alone finds no lock: the compare fails early).
        captured.forEach((call, i) => {
          const label = `${name}: ${i === 0 ? 'acquire' : 'release, finding no lock'} (${call[0] === 'evalsha' ? scriptNames.get(call[1][0]) ?? 'its script' : call[0].toUpperCase()}, ${call[1].length} arguments)`;
          callRuns[label] = replayer(bare, [call], captureKey);
        });
      }
      out.push('| pair | p50 µs | Redis CPU µs | this process\'s CPU µs |', '|---|---:|---:|---:|');
      for (const [name, r] of Object.entries(await rotatingRounds(pairRuns, redisPid))) {
        out.push(`| ${name} | ${r.p50.toFixed(0)} | ${r.redisCpu.toFixed(0)} | ${r.nodeCpu.toFixed(0)} |`);
      }
      out.push('', 'Single calls on the bare client (a fresh key each): the libraries\' calls, and the reference scripts of section 1:', '');
      for (const [label, { lua, keys, args }] of Object.entries(REFERENCE)) {
        const sha = await bare.script('LOAD', lua);
        callRuns[label] = (key) => {
          const keyArgs = Array.from({ length: keys }, (_, k) => (k === 0 ? `{${key}}` : k === 1 ? 'ref:fences' : `{${key}}:${k}`));
          const argv = Array.from({ length: args }, (_, k) => (k === 1 ? '30000' : 'a'.repeat(60)));
          return () => bare.evalsha(sha, keys, ...keyArgs, ...argv);
        };
      }
      out.push('| call | p50 µs | Redis CPU µs | this process\'s CPU µs |', '|---|---:|---:|---:|');
      for (const [name, r] of Object.entries(await rotatingRounds(callRuns, redisPid))) {
        out.push(`| ${name} | ${r.p50.toFixed(0)} | ${r.redisCpu.toFixed(0)} | ${r.nodeCpu.toFixed(0)} |`);
      }
    } finally {
      bare.disconnect();
    }
  } finally {
    await app.close();
    admin.disconnect();
    semaphoreClient.disconnect();
    await server.stop();
  }

  out.push('', `## 4. JavaScript per pair, client answering at once (median of 3 rounds of ${JS_PAIRS.toLocaleString('en-US')} pairs; µs)`, '');
  out.push('| library | plain | after AsyncLocalStorage.run() |', '|---|---:|---:|');
  for (const which of ['ours', 'sem']) {
    const name = which === 'ours' ? 'nestjs-redis-lock' : 'redis-semaphore';
    out.push(`| ${name} | ${jsCost(which, false).toFixed(2)} | ${jsCost(which, true).toFixed(2)} |`);
  }
  console.log(`# Cost breakdown of scenario A (Node ${process.version})\n\n${out.join('\n')}`);
  process.exit(0);
}

const jsFlag = process.argv.indexOf('--js');
if (jsFlag >= 0) await jsChild(process.argv[jsFlag + 1], process.argv.includes('--hooks'));
else await main();
