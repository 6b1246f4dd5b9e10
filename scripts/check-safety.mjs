#!/usr/bin/env node
// npm run check:safety -- [--seed N] [--minutes M] [--seconds S] [--topology single|cluster|sentinel|redlock|memory|all|a,b] [--stop-at-first] [--out DIR]
// Runs the seeded safety checker (test/safety/) for long soaks; `npm test` runs a fixed CI seed list instead.
// Replaying a failing seed: the same --topology, --seed and --seconds give the same operation schedule and fault plan.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules`.trim() };
const names = { '--seed': 'SAFETY_SEED', '--minutes': 'SAFETY_MINUTES', '--seconds': 'SAFETY_SECONDS', '--topology': 'SAFETY_TOPOLOGY', '--out': 'SAFETY_OUT' };
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--stop-at-first') env.SAFETY_STOP_AT_FIRST = '1';
  else if (names[args[i]] && args[i + 1] !== undefined) env[names[args[i]]] = args[++i];
  else {
    console.error(`unknown argument ${args[i]}\nusage: npm run check:safety -- [--seed N] [--minutes M] [--seconds S] [--topology T|all] [--stop-at-first] [--out DIR]`);
    process.exit(64);
  }
}
const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const jest = spawnSync('npx', ['jest', '--config', 'jest.safety.config.js', '--runInBand', '--verbose=false'], { stdio: 'inherit', env });
process.exit(jest.status ?? 1);
