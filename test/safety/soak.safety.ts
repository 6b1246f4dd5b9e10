/**
 * The long run behind `npm run check:safety` (scripts/check-safety.mjs passes its options as
 * SAFETY_* environment variables). Rounds of `SAFETY_SECONDS` each, seed after seed, over the chosen
 * topologies, until `SAFETY_MINUTES` have passed (at least one round per topology). Every failing
 * round prints its report (slice of history, schedule, replay command); the test fails at the end.
 */
import fs from 'node:fs';
import { runSafety } from './run.js';
import { TOPOLOGIES, type TopologyName } from './schedule.js';

const env = process.env;
const topologies = (env.SAFETY_TOPOLOGY && env.SAFETY_TOPOLOGY !== 'all' ? env.SAFETY_TOPOLOGY.split(',') : [...TOPOLOGIES]) as TopologyName[];
const firstSeed = Number(env.SAFETY_SEED ?? Date.now() % 100_000);
const minutes = Number(env.SAFETY_MINUTES ?? 0);
const seconds = Number(env.SAFETY_SECONDS ?? 20);
const stopAtFirst = env.SAFETY_STOP_AT_FIRST === '1';

for (const topology of topologies) {
  if (!TOPOLOGIES.includes(topology)) throw new Error(`unknown topology ${topology}; one of ${TOPOLOGIES.join(', ')}`);
}

test(`safety soak: ${topologies.join(', ')} from seed ${firstSeed} for ${minutes} min`, async () => {
  const deadline = Date.now() + minutes * 60_000;
  const failures: string[] = [];
  const started = Date.now();
  let round = 0;
  for (let seed = firstSeed; ; seed++) {
    for (const topology of topologies) {
      const result = await runSafety({ topology, seed, durationMs: seconds * 1000, outDir: env.SAFETY_OUT });
      round++;
      const elapsed = ((Date.now() - started) / 1000).toFixed(0);
      fs.writeSync(2, `[${elapsed}s] round ${round}: ${result.violations.length ? result.report : `${result.report} — ok`}\n${JSON.stringify(result.stats)}\n`);
      if (result.violations.length) {
        failures.push(`${topology} seed ${seed}: ${result.violations.length} violation(s), first after ${result.firstViolationAfterS?.toFixed(1)} s`);
        if (stopAtFirst) break;
      }
    }
    if ((stopAtFirst && failures.length) || Date.now() >= deadline) break;
  }
  expect(failures).toEqual([]);
});
