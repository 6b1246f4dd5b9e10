import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

export type FixtureEvent = { event: string; at: number } & Record<string, any>;

/**
 * A fixture process (test/fixtures/*.mjs, importing the built package from dist/) speaking one
 * JSON object per stdout line. Every process started is tracked; `killAll()` reaps them.
 */
export class FixtureProcess {
  private static readonly running = new Set<FixtureProcess>();
  readonly events: FixtureEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderrText = '';
  private stdoutRest = '';
  private readonly listeners = new Set<() => void>();

  private constructor(readonly proc: ChildProcess, readonly name: string) {
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        resolve({ code, signal });
        this.notify();
      }),
    );
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      this.stdoutRest += chunk;
      const lines = this.stdoutRest.split('\n');
      this.stdoutRest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.events.push(JSON.parse(line) as FixtureEvent);
        } catch {
          this.stderrText += `[stdout] ${line}\n`;
        }
      }
      this.notify();
    });
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => (this.stderrText += chunk));
    proc.on('error', (error) => (this.stderrText += `[spawn] ${String(error)}\n`));
  }

  static spawn(file: string, config: unknown, name: string): FixtureProcess {
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the fixtures
    const proc = spawn(process.execPath, [fixture(file), JSON.stringify(config)], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const child = new FixtureProcess(proc, name);
    FixtureProcess.running.add(child);
    return child;
  }

  static async killAll(): Promise<void> {
    await Promise.all([...FixtureProcess.running].map((child) => child.kill()));
  }

  get gone(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  get stderr(): string {
    return this.stderrText;
  }

  of(event: string): FixtureEvent[] {
    return this.events.filter((e) => e.event === event);
  }

  /** The first event matching `predicate`; rejects if the process exits first or after `ms` (a deadline). */
  waitFor(predicate: (event: FixtureEvent) => boolean, what: string, ms = 60_000): Promise<FixtureEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(predicate);
        if (found) return finish(() => resolve(found));
        if (this.gone) {
          finish(() => reject(new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}; stderr:\n${this.stderrText}`)));
        }
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`${this.name}: no ${what} within ${ms} ms; stderr:\n${this.stderrText}`))), ms);
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.gone) this.proc.kill(signal);
  }

  /** SIGKILL unless it already exited (SIGCONT first, in case it was stopped); resolves once it has. */
  async kill(): Promise<void> {
    if (!this.gone) {
      this.proc.kill('SIGKILL');
      this.proc.kill('SIGCONT');
    }
    await this.exited;
    FixtureProcess.running.delete(this);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}
