import { withTimeout } from '../with-timeout.js';
import type { InspectionBackend, InstanceRecord, RawHold, RawLockState, RawMasterState, RawView } from './inspection-backend.js';
import type { RedisInspection } from './redis-inspection.js';

/** Bound on each master's answer: a master that is down must not hold up the report. */
const MASTER_TIMEOUT_MS = 1_000;

/**
 * Inspection over Redlock masters. A key is held when a quorum of masters has the same holder;
 * its lease is what that quorum still guarantees (the quorum-th longest remaining lease among
 * them). Every master's own view is reported beside it.
 */
export class RedlockInspection implements InspectionBackend {
  readonly quorum: number;

  constructor(private readonly masters: readonly RedisInspection[]) {
    this.quorum = Math.floor(masters.length / 2) + 1;
  }

  async inspect(key: string): Promise<RawView> {
    const answers = await this.onMasters((master) => master.readState(key));
    const masters: RawMasterState[] = answers.map((answer, i) =>
      answer instanceof Error ? { node: this.masters[i].node, error: answer.message } : { node: this.masters[i].node, state: answer },
    );
    const states = answers.filter((answer): answer is RawLockState => !(answer instanceof Error));
    const state: RawLockState = {
      fence: Math.max(0, ...states.map((s) => s.fence)),
      writerWaiting: false,
      wanted: states.some((s) => s.wanted),
      queueLength: 0,
    };
    // Only exclusive locks exist under Redlock (permits, readers and fair mode are refused).
    const byToken = new Map<string, RawHold[]>();
    for (const s of states) {
      if (!s.exclusive) continue;
      const list = byToken.get(s.exclusive.token) ?? [];
      list.push(s.exclusive);
      byToken.set(s.exclusive.token, list);
    }
    for (const [token, holds] of byToken) {
      if (holds.length < this.quorum) continue;
      const remaining = holds.map((hold) => hold.remainingMs).sort((a, b) => b - a);
      state.exclusive = { token, remainingMs: remaining[this.quorum - 1] };
    }
    return { state, quorum: this.quorum, masters };
  }

  async *candidateKeys(match: string | undefined): AsyncIterable<string> {
    // A key held by a quorum is on a majority: every master but a minority lists it.
    for (const master of this.masters) {
      try {
        for await (const key of master.candidateKeys(match)) yield key;
      } catch {
        // A master that is down: the others still list every key a quorum holds.
      }
    }
  }

  async readInstances(ids: readonly string[]): Promise<Map<string, InstanceRecord>> {
    const answers = await this.onMasters((master) => master.readInstances(ids));
    const records = new Map<string, InstanceRecord>();
    for (const answer of answers) if (!(answer instanceof Error)) for (const [id, record] of answer) records.set(id, record);
    return records;
  }

  async writeInstance(record: InstanceRecord, ttl: number): Promise<void> {
    await this.onMasters((master) => master.writeInstance(record, ttl));
  }

  async removeInstance(id: string): Promise<void> {
    await this.onMasters((master) => master.removeInstance(id));
  }

  async forceRelease(key: string, announceToken: string): Promise<{ tokens: string[]; fence: number }> {
    // On every master that answers: each counter passes the old fence, so any later quorum's does.
    const answers = await this.onMasters((master) => master.forceRelease(key, announceToken));
    const done = answers.filter((answer): answer is { tokens: string[]; fence: number } => !(answer instanceof Error));
    if (done.length < this.quorum) {
      const errors = answers.filter((answer): answer is Error => answer instanceof Error);
      throw new AggregateError(errors, `only ${done.length} of ${this.masters.length} Redlock masters answered; ${this.quorum} are needed`);
    }
    return { tokens: [...new Set(done.flatMap((answer) => answer.tokens))], fence: Math.max(...done.map((answer) => answer.fence)) };
  }

  private onMasters<T>(call: (master: RedisInspection) => Promise<T>): Promise<Array<T | Error>> {
    return Promise.all(
      this.masters.map((master) =>
        withTimeout(call(master), MASTER_TIMEOUT_MS).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
      ),
    );
  }
}
