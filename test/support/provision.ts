/**
 * Makes sure the tools the tests need are there before any test runs. This file is jest's
 * globalSetup (its default export runs once per run, before any test file; it has no relative
 * imports because jest loads it through Node, without the test module mapping):
 * `redis-server` (every Redis test), `redis-cli` (Cluster set-up) and `openssl` (the TLS test).
 *
 * For each tool, in order: an explicit path from the environment (`REDIS_SERVER`, `REDIS_CLI`,
 * `OPENSSL`; `redis-cli` also next to `REDIS_SERVER`), then the PATH. Tools given by path are
 * linked into a temp dir put first on PATH, so every spawner (harness, demo, cluster) finds them.
 * Missing tools are installed when that is possible without asking anyone:
 *   - Debian/Ubuntu with apt-get, as root or with passwordless sudo:
 *     apt-get update && apt-get install -y redis-server redis-tools openssl
 *     (then the service the package starts on 6379 is stopped: tests never use it);
 *   - macOS with Homebrew: brew install redis (openssl ships with macOS).
 * Otherwise the run fails with the exact command to run. `REDIS_PROVISION=never` turns
 * installing off (the run then fails with that command instead).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type Tool = 'redis-server' | 'redis-cli' | 'openssl';
export const TOOLS: readonly Tool[] = ['redis-server', 'redis-cli', 'openssl'];

/** Environment variable naming each tool's path. */
export const TOOL_ENV: Record<Tool, string> = { 'redis-server': 'REDIS_SERVER', 'redis-cli': 'REDIS_CLI', openssl: 'OPENSSL' };

const APT_PACKAGE: Record<Tool, string> = { 'redis-server': 'redis-server', 'redis-cli': 'redis-tools', openssl: 'openssl' };
const BREW_PACKAGE: Record<Tool, string> = { 'redis-server': 'redis', 'redis-cli': 'redis', openssl: 'openssl' };

/** What the decision depends on; `probeSystem` reads it from the machine. */
export interface SystemFacts {
  platform: NodeJS.Platform;
  env: Record<string, string | undefined>;
  /** Executable path of each tool that was found (environment variable, PATH), or undefined. */
  found: Record<Tool, string | undefined>;
  /** A problem with a path given in the environment (not a file, not executable). */
  badEnv: string[];
  aptGet: boolean;
  brew: boolean;
  root: boolean;
  passwordlessSudo: boolean;
}

export type Plan =
  | { kind: 'ready'; tools: Record<Tool, string> }
  | { kind: 'install'; missing: Tool[]; commands: string[][]; then?: string[][]; explain: string }
  | { kind: 'fail'; missing: Tool[]; message: string };

function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` on a PATH string. */
export function which(name: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Reads the facts from this machine (no side effects). */
export function probeSystem(env: Record<string, string | undefined> = process.env): SystemFacts {
  const badEnv: string[] = [];
  const found = {} as Record<Tool, string | undefined>;
  for (const tool of TOOLS) {
    const given = env[TOOL_ENV[tool]];
    if (given) {
      if (isExecutable(given)) found[tool] = path.resolve(given);
      else badEnv.push(`${TOOL_ENV[tool]}=${given} is not an executable file`);
    }
  }
  if (!found['redis-cli'] && found['redis-server']) {
    const sibling = path.join(path.dirname(found['redis-server']), 'redis-cli');
    if (isExecutable(sibling)) found['redis-cli'] = sibling;
  }
  for (const tool of TOOLS) found[tool] ??= which(tool, env.PATH);
  const sudo = which('sudo', env.PATH);
  return {
    platform: process.platform,
    env,
    found,
    badEnv,
    aptGet: which('apt-get', env.PATH) !== undefined,
    brew: which('brew', env.PATH) !== undefined,
    root: typeof process.getuid === 'function' && process.getuid() === 0,
    passwordlessSudo: sudo !== undefined && spawnSync(sudo, ['-n', 'true'], { stdio: 'ignore', env: env as NodeJS.ProcessEnv }).status === 0,
  };
}

/** The command a person would run to install what is missing, for messages. */
export function manualCommand(facts: Pick<SystemFacts, 'platform' | 'aptGet' | 'brew'>, missing: readonly Tool[]): string {
  if (facts.platform === 'darwin') return `brew install ${[...new Set(missing.map((t) => BREW_PACKAGE[t]))].join(' ')}`;
  const packages = [...new Set(missing.map((t) => APT_PACKAGE[t]))].join(' ');
  return `sudo apt-get update && sudo apt-get install -y ${packages}`;
}

/** Decides what to do; pure, so every branch is unit-tested. */
export function planProvisioning(facts: SystemFacts): Plan {
  const missing = TOOLS.filter((tool) => facts.found[tool] === undefined);
  if (facts.badEnv.length > 0) {
    return { kind: 'fail', missing, message: `The tests cannot use ${facts.badEnv.join('; ')}. Fix or unset it.` };
  }
  if (missing.length === 0) return { kind: 'ready', tools: facts.found as Record<Tool, string> };

  const what = missing.join(', ');
  const manual = manualCommand(facts, missing);
  const byPath = `or point ${missing.map((t) => TOOL_ENV[t]).join(' / ')} at the binaries you have`;
  if (facts.env.REDIS_PROVISION === 'never') {
    return { kind: 'fail', missing, message: `The tests need ${what}, which ${missing.length === 1 ? 'is' : 'are'} not installed (REDIS_PROVISION=never, so not installing). Run: ${manual} (${byPath}).` };
  }
  if (facts.platform === 'linux' && facts.aptGet && (facts.root || facts.passwordlessSudo)) {
    const sudo = facts.root ? [] : ['sudo', '-n'];
    const packages = [...new Set(missing.map((t) => APT_PACKAGE[t]))];
    return {
      kind: 'install',
      missing,
      explain: `installing ${packages.join(' ')} with apt-get${facts.root ? ' (running as root)' : ' (passwordless sudo)'}`,
      commands: [
        [...sudo, 'apt-get', 'update', '-qq'],
        [...sudo, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', ...packages],
      ],
      // The Debian package starts a service on 6379; the tests never use it.
      then: missing.includes('redis-server')
        ? [
            [...sudo, 'service', 'redis-server', 'stop'],
            [...sudo, 'systemctl', 'stop', 'redis-server'],
          ]
        : undefined,
    };
  }
  if (facts.platform === 'darwin' && facts.brew) {
    const packages = [...new Set(missing.map((t) => BREW_PACKAGE[t]))];
    return { kind: 'install', missing, explain: `installing ${packages.join(' ')} with Homebrew`, commands: [['brew', 'install', ...packages]] };
  }
  const why =
    facts.platform === 'linux' && facts.aptGet
      ? 'installing needs root or passwordless sudo'
      : facts.platform === 'darwin'
      ? 'Homebrew (brew) was not found'
      : 'no supported package manager (apt-get as root or with passwordless sudo, or Homebrew) was found';
  return { kind: 'fail', missing, message: `The tests need ${what}, which ${missing.length === 1 ? 'is' : 'are'} not installed, and ${why}. Run: ${manual} (${byPath}), then run the tests again.` };
}

/**
 * A temp dir of links to tools found outside PATH (given by environment variable), to put first
 * on PATH; undefined when PATH already finds every tool at the chosen path.
 */
export function linkDirFor(tools: Record<Tool, string>, pathVar: string | undefined): string | undefined {
  const needed = TOOLS.filter((tool) => which(tool, pathVar) !== tools[tool]);
  if (needed.length === 0) return undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-redis-lock-bin-'));
  for (const tool of needed) fs.symlinkSync(tools[tool], path.join(dir, tool));
  return dir;
}

export interface ProvisionResult {
  tools: Record<Tool, string>;
  /** The PATH the tests should use (with a link dir in front when tools came from the environment). */
  path: string | undefined;
  installed: Tool[];
}

/** Runs the plan: installs when it can, fails with the exact command when it cannot. */
export function provisionTestTools(
  options: { env?: Record<string, string | undefined>; log?: (line: string) => void } = {},
): ProvisionResult {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let plan = planProvisioning(probeSystem(env));
  let installed: Tool[] = [];
  if (plan.kind === 'install') {
    log(`[nestjs-redis-lock tests] ${plan.missing.join(', ')} not found: ${plan.explain}`);
    for (const command of plan.commands) {
      log(`[nestjs-redis-lock tests] $ ${command.join(' ')}`);
      const run = spawnSync(command[0]!, command.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env: env as NodeJS.ProcessEnv });
      if (run.status !== 0) {
        throw new Error(
          `[nestjs-redis-lock tests] "${command.join(' ')}" failed (${run.error?.message ?? `exit ${run.status}`}). ` +
            `Install by hand: ${manualCommand({ platform: process.platform, aptGet: true, brew: true }, plan.missing)}`,
        );
      }
    }
    for (const command of plan.then ?? []) spawnSync(command[0]!, command.slice(1), { stdio: 'ignore', env: env as NodeJS.ProcessEnv });
    installed = plan.missing;
    plan = planProvisioning(probeSystem(env));
    if (plan.kind !== 'ready') {
      throw new Error(`[nestjs-redis-lock tests] still missing after installing: ${plan.missing.join(', ')}`);
    }
  }
  if (plan.kind === 'fail') throw new Error(`[nestjs-redis-lock tests] ${plan.message}`);
  const linkDir = linkDirFor(plan.tools, env.PATH);
  if (linkDir) log(`[nestjs-redis-lock tests] using ${TOOLS.map((t) => `${t}=${plan.kind === 'ready' ? plan.tools[t] : ''}`).join(' ')} (linked from ${linkDir})`);
  return { tools: plan.tools, path: linkDir ? [linkDir, env.PATH].filter(Boolean).join(path.delimiter) : env.PATH, installed };
}

/**
 * jest globalSetup: finds or installs the tools, and puts tools given by path first on PATH for
 * every test worker (jest starts them after this, and they inherit process.env).
 */
export default function globalSetup(): void {
  const result = provisionTestTools();
  if (result.path !== process.env.PATH && result.path !== undefined) {
    process.env.PATH = result.path;
    const linkDir = result.path.split(path.delimiter)[0]!;
    process.on('exit', () => fs.rmSync(linkDir, { recursive: true, force: true }));
  }
}
