import { parseHolderToken } from '../instance/holder-token.js';
import type { InspectionBackend, InstanceRecord, RawHold, RawView } from './inspection-backend.js';
import type { ForcedRelease, LockHolderInfo, LockInfo, LockInstanceInfo, LockListOptions } from './lock-info.interface.js';

/** Default bound of `list()`: at most this many held keys. */
export const DEFAULT_LIST_LIMIT = 1_000;

/**
 * Turns what the store holds into {@link LockInfo}: owner tokens become the instance that holds
 * (from the id in the token and the instance's record) and go no further. Used by LockService
 * and the CLI alike.
 */
export class LockInspector {
  constructor(readonly backend: InspectionBackend) {}

  async inspect(key: string): Promise<LockInfo> {
    const view = await this.backend.inspect(key);
    const instances = await this.instancesOf(tokensOf(view));
    return describe(key, view, instances);
  }

  /** Held keys matching `match`, at most `limit`, found with SCAN and inspected one by one. */
  list(options: LockListOptions = {}): LockListing {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`list(): limit must be a whole number, 1 or more (got ${String(limit)})`);
    if (options.match !== undefined && typeof options.match !== 'string') {
      throw new RangeError(`list(): match must be a glob string such as 'order:*' (got ${typeof options.match})`);
    }
    return new LockListing(this.listHeld(options.match, limit));
  }

  async forceRelease(key: string, announceToken: string): Promise<ForcedRelease> {
    const { tokens, fence } = await this.backend.forceRelease(key, announceToken);
    const instances = await this.instancesOf(tokens);
    return { key, released: tokens.length, fence, holders: tokens.map((token) => instanceOf(token, instances)) };
  }

  private async *listHeld(match: string | undefined, limit: number): AsyncGenerator<LockInfo> {
    const seen = new Set<string>();
    let found = 0;
    // Instance records read once per listing: many keys usually share a few holders.
    const known = new Map<string, InstanceRecord | null>();
    for await (const key of this.backend.candidateKeys(match)) {
      if (seen.has(key)) continue;
      seen.add(key);
      const view = await this.backend.inspect(key);
      const info = describe(key, view, await this.instancesOf(tokensOf(view), known));
      if (!info.held) continue;
      yield info;
      found += 1;
      if (found >= limit) return;
    }
  }

  private async instancesOf(tokens: readonly string[], known = new Map<string, InstanceRecord | null>()): Promise<Map<string, InstanceRecord | null>> {
    const ids = [...new Set(tokens.map((token) => parseHolderToken(token)?.instanceId).filter((id): id is string => id !== undefined))];
    const missing = ids.filter((id) => !known.has(id));
    if (missing.length > 0) {
      const records = await this.backend.readInstances(missing);
      for (const id of missing) known.set(id, records.get(id) ?? null);
    }
    return known;
  }
}

/**
 * `list()`'s result: iterate it with `for await`, or `await` it for an array. Keys are found with
 * SCAN as the iteration goes, so stopping early costs nothing more.
 */
export class LockListing implements AsyncIterable<LockInfo>, PromiseLike<LockInfo[]> {
  constructor(private readonly items: AsyncIterable<LockInfo>) {}

  [Symbol.asyncIterator](): AsyncIterator<LockInfo> {
    return this.items[Symbol.asyncIterator]();
  }

  async toArray(): Promise<LockInfo[]> {
    const all: LockInfo[] = [];
    for await (const item of this.items) all.push(item);
    return all;
  }

  then<R1 = LockInfo[], R2 = never>(
    onfulfilled?: ((value: LockInfo[]) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): PromiseLike<R1 | R2> {
    return this.toArray().then(onfulfilled, onrejected);
  }
}

function tokensOf(view: RawView): string[] {
  const { state } = view;
  return [
    ...(state.exclusive ? [state.exclusive.token] : []),
    ...(state.permits?.holders ?? []).map((hold) => hold.token),
    ...(state.readers ?? []).map((hold) => hold.token),
  ];
}

function instanceOf(token: string, instances: ReadonlyMap<string, InstanceRecord | null>): LockInstanceInfo | undefined {
  const parsed = parseHolderToken(token);
  if (!parsed) return undefined;
  const record = instances.get(parsed.instanceId);
  if (!record) return { id: parsed.instanceId, alive: false };
  const { host, pid, app, version, startedAt } = record;
  return { id: parsed.instanceId, host, pid, ...(app === undefined ? {} : { app }), version, startedAt, alive: true };
}

function holder(hold: RawHold, instances: ReadonlyMap<string, InstanceRecord | null>): LockHolderInfo {
  const since = parseHolderToken(hold.token)?.since;
  const instance = instanceOf(hold.token, instances);
  return {
    ...(instance ? { instance } : {}),
    ...(since === undefined ? {} : { since }),
    remainingMs: hold.remainingMs,
    ...(hold.fence === undefined ? {} : { fence: hold.fence }),
  };
}

/** The report of one key; the tokens stay behind. */
function describe(key: string, view: RawView, instances: ReadonlyMap<string, InstanceRecord | null>): LockInfo {
  const { state } = view;
  let mode: LockInfo['mode'];
  let holds: RawHold[] = [];
  // The scripts keep the modes of one key apart; should several show anyway, the strongest is reported.
  if (state.exclusive) {
    mode = 'exclusive';
    holds = [state.exclusive];
  } else if (state.permits && state.permits.holders.length > 0) {
    mode = 'permits';
    holds = state.permits.holders;
  } else if (state.readers && state.readers.length > 0) {
    mode = 'read';
    holds = state.readers;
  }
  const info: LockInfo = {
    key,
    held: holds.length > 0,
    ...(mode ? { mode } : {}),
    holders: holds.map((hold) => holder(hold, instances)),
    fence: state.fence,
    ...(mode === 'permits' && state.permits?.limit !== undefined ? { permits: state.permits.limit } : {}),
    ...(state.writerWaiting ? { writerWaiting: true } : {}),
    queueLength: state.queueLength,
    waiting: state.wanted || state.writerWaiting || state.queueLength > 0,
  };
  if (view.quorum !== undefined) {
    info.quorum = view.quorum;
    const quorumToken = state.exclusive?.token;
    info.masters = (view.masters ?? []).map((master) => {
      if (!master.state) return { node: master.node, up: false, held: false, ...(master.error ? { error: master.error } : {}) };
      const mine = quorumToken !== undefined && master.state.exclusive?.token === quorumToken;
      return {
        node: master.node,
        up: true,
        held: mine,
        ...(mine ? { remainingMs: master.state.exclusive?.remainingMs } : {}),
        fence: master.state.fence,
      };
    });
  }
  return info;
}
