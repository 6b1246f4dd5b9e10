/**
 * The safety checker's CI run (see test/safety/ and `npm run check:safety` for long soaks): for
 * every store, a fixed list of seeds, each a short seeded run with faults, checked against every
 * invariant over its whole history. A failure prints the violations with the slice of history that
 * shows them, the schedule, and the command that replays the seed.
 */
import { runSafety } from './safety/run.js';
import type { TopologyName } from './safety/schedule.js';

/** The CI seeds and run length per store: adjust here. */
export const CI_SEEDS: Record<TopologyName, { seeds: number[]; seconds: number }> = {
  memory: { seeds: [1, 2], seconds: 10 },
  single: { seeds: [5, 7], seconds: 15 },
  redlock: { seeds: [1, 2], seconds: 15 },
  sentinel: { seeds: [3], seconds: 15 },
  cluster: { seeds: [1], seconds: 12 },
};

describe('safety checker (seeded runs with faults, invariants over the history)', () => {
  for (const [topology, { seeds, seconds }] of Object.entries(CI_SEEDS) as Array<[TopologyName, { seeds: number[]; seconds: number }]>) {
    for (const seed of seeds) {
      test(`${topology}, seed ${seed}`, async () => {
        const result = await runSafety({ topology, seed, durationMs: seconds * 1000 });
        if (result.violations.length > 0) process.stderr.write(`${result.report}\n`);
        // On failure the diff leads with the run's header and the client clocks it measured, so a
        // CI log that keeps only the assertion still says what ran.
        const found = result.violations.map((v) => `invariant ${v.invariant}: ${v.message}`);
        expect(found.length > 0 ? [result.report.split('\n').slice(0, 2).join(' | '), ...found] : []).toEqual([]);
        // The run did something: calls were granted and (where the store has them) faults injected.
        expect(result.stats.granted).toBeGreaterThan(20);
      }, seconds * 1000 + 120_000);
    }
  }
});
