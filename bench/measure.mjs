/** Measuring helpers: percentiles, Redis command counters (server and client side), heap. */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';

export const now = () => performance.now();

/** Nearest-rank percentile of a list of numbers (q in 0..1). */
export function percentile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values) {
  return percentile(values, 0.5);
}

/** `list` turned `by` places (the first `by % length` entries moved to the end): who goes first in round `by`. */
export function rotate(list, by) {
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

/**
 * One row from several rounds of the same scenario: each figure is the median of its rounds' (so a
 * round the VM slowed, or a peer's unlucky retry timing, moves no ratio on its own); counts of
 * things that must stay 0 (overlaps, failures) are summed, as is the wall time. `rounds` keeps each
 * round's acquisitions per second for the report.
 */
export function medianOfRounds(rounds) {
  const summed = new Set(['acquisitions', 'failures', 'overlaps', 'wall']);
  const row = { rounds: rounds.map((round) => round.acqPerSec) };
  for (const [field, value] of Object.entries(rounds[0])) {
    if (summed.has(field)) row[field] = rounds.reduce((sum, round) => sum + round[field], 0);
    else if (field === 'maxHolders') row[field] = Math.max(...rounds.map((round) => round[field]));
    else if (typeof value === 'number') row[field] = median(rounds.map((round) => round[field]));
    else if (field === 'perCommand') {
      const commands = new Set(rounds.flatMap((round) => Object.keys(round.perCommand)));
      row.perCommand = Object.fromEntries([...commands].map((cmd) => [cmd, median(rounds.map((round) => round.perCommand[cmd] ?? 0))]));
    } else row[field] = value;
  }
  return row;
}

/**
 * Requests this process sent to Redis (every ioredis command written, pipelined or not; INFO
 * excluded), counted by wrapping Redis.prototype.sendCommand. The library under test uses the
 * same ioredis module, so its connections are counted too.
 */
export const clientRequests = { count: 0 };
const originalSendCommand = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function countedSendCommand(command, stream) {
  if (this.status === 'ready' && command?.name !== 'info') clientRequests.count += 1;
  return originalSendCommand.call(this, command, stream);
};

/** INFO commandstats as { command: calls } (commands run inside Lua scripts are counted by Redis too). */
export async function commandStats(admin) {
  const info = await admin.info('commandstats');
  const calls = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1]] = Number(match[2]);
  return calls;
}

/** Calls per command between two snapshots, INFO itself excluded. */
export function commandDelta(before, after) {
  const delta = {};
  let total = 0;
  for (const [name, calls] of Object.entries(after)) {
    if (name === 'info') continue;
    const d = calls - (before[name] ?? 0);
    if (d > 0) {
      delta[name] = d;
      total += d;
    }
  }
  return { total, perCommand: delta };
}

/** Snapshot of both counters, to diff around a measured section. */
export async function counters(admin) {
  return { server: await commandStats(admin), client: clientRequests.count };
}

export function counterDelta(before, after) {
  const { total, perCommand } = commandDelta(before.server, after.server);
  return { server: total, perCommand, client: after.client - before.client };
}

/** Heap in use after full collections (needs node --expose-gc). */
export async function settledHeap() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}
