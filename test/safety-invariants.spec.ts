import { check, type ErrorInfo, type HistoryEvent } from './safety/invariants.js';

// The checker's own rules, on hand-made histories: a rule that accepted too much would hide bugs.

/** The violations of one invariant that the checker finds in a history (one Redis, no semaphores). */
const violationsOf = (invariant: number, events: HistoryEvent[]) =>
  check(events, { topology: 'single', agreedPermits: new Map() }).violations.filter((v) => v.invariant === invariant);

describe('safety checker, invariant 7: a refused late reply', () => {
  const lateReply = (answeredMs: number, leaseMs: number): ErrorInfo => ({
    name: 'LockUnavailableError',
    message: `Lock "k" could not be taken: Redis answered ${answeredMs} ms after the attempt was sent, after its ${leaseMs} ms lease had already run out; raise "ttl" well above your Redis round-trip time`,
    lateReply: { ttl: leaseMs, tookMs: answeredMs },
  });
  const history = (callMs: number, error: ErrorInfo): HistoryEvent[] => [
    { ev: 'call', id: '1.1', app: 0, child: 0, worker: 0, via: 'acquire', keys: ['k'], ttl: 300, wait: 0, t: 1_000 },
    { ev: 'end', id: '1.1', t: 1_000 + callMs, result: 'error', error },
  ];
  const invariant7 = (events: HistoryEvent[]) => violationsOf(7, events);

  it('accepts it with no fault when the call itself lasted as long as the reply took (a slow machine)', () => {
    expect(invariant7(history(400, lateReply(390, 300)))).toEqual([]);
  });

  it('flags it when the call ended sooner than the library says the reply took', () => {
    expect(invariant7(history(100, lateReply(390, 300)))).toHaveLength(1);
  });

  it('flags it when the reply it names came back within the lease', () => {
    expect(invariant7(history(400, lateReply(250, 300)))).toHaveLength(1);
  });

  it('goes by the figures the library gave, not by the message: the same words without them are flagged', () => {
    const { lateReply: _figures, ...wordsOnly } = lateReply(390, 300);
    expect(invariant7(history(400, wordsOnly))).toHaveLength(1);
  });

  it('flags any other unavailable error with no fault to explain it', () => {
    expect(invariant7(history(400, { name: 'LockUnavailableError', message: 'Lock "k" could not be taken: Redis did not answer' }))).toHaveLength(1);
  });

  it('under Redlock, accepts it when a master was killed while the call ran (it may have been one of a bare quorum that granted it), not before', () => {
    const unavailable: ErrorInfo = { name: 'LockUnavailableError', message: 'Lock "k" could not be taken: Redlock quorum reached too late' };
    const killed = (start: number): HistoryEvent => ({ ev: 'fault', kind: 'killMaster', target: 2, start, end: start + 1_900 });
    const redlock7 = (events: HistoryEvent[]) => check(events, { topology: 'redlock', agreedPermits: new Map() }).violations.filter((v) => v.invariant === 7);
    expect(redlock7([...history(400, unavailable), killed(1_003)])).toEqual([]);
    // Killed well before the call: two masters remain up, which is a quorum.
    expect(redlock7([...history(400, unavailable), killed(-8_000)])).toHaveLength(1);
  });

  it('under Redlock, accepts it around the start of a hung master (its answer waited for until the apps skip it), not long into the hang', () => {
    const unavailable: ErrorInfo = { name: 'LockUnavailableError', message: 'Lock "k" could not be taken: no reply within 1000 ms' };
    const hung = (start: number, end: number): HistoryEvent => ({ ev: 'fault', kind: 'hangMaster', target: 1, start, end });
    const redlock7 = (events: HistoryEvent[]) => check(events, { topology: 'redlock', agreedPermits: new Map() }).violations.filter((v) => v.invariant === 7);
    expect(redlock7([...history(400, unavailable), hung(900, 4_000)])).toEqual([]);
    // Stopped 9 s before the call and still stopped: the apps skip it by then, and two masters answer.
    expect(redlock7([...history(400, unavailable), hung(-8_000, 4_000)])).toHaveLength(1);
  });
});

describe('safety checker, invariant 5: a lock returned with its lease over', () => {
  // Lease from 1,000 (ttl 300, so over at 1,300); the caller got it at 1,312.
  const lateGrant: HistoryEvent[] = [
    { ev: 'call', id: '1.1', app: 0, child: 0, worker: 0, via: 'acquire', keys: ['k'], ttl: 300, wait: 3_000, t: 1_000 },
    { ev: 'grant', id: '1.1', t: 1_312, fences: { k: 1 }, token: 't', exp: 1_300, aborted: false },
    { ev: 'release', id: '1.1', t: 1_400 },
    { ev: 'end', id: '1.1', t: 1_401, result: 'ok' },
  ];
  const invariant5 = (events: HistoryEvent[]) => violationsOf(5, events);

  it("flags it when the caller's process ran on", () => {
    expect(invariant5(lateGrant)).toHaveLength(1);
  });

  it('does not judge it when that process was measured standing still in between', () => {
    expect(invariant5([...lateGrant, { ev: 'stall', child: 0, start: 1_290, end: 1_310 }])).toEqual([]);
  });

  it('still flags it when the stall was in another process, or outside the lease', () => {
    expect(invariant5([...lateGrant, { ev: 'stall', child: 1, start: 1_290, end: 1_310 }])).toHaveLength(1);
    expect(invariant5([...lateGrant, { ev: 'stall', child: 0, start: 500, end: 900 }])).toHaveLength(1);
  });

  it('still flags it when the stall was much shorter than the grant was late', () => {
    // 12 ms late; 4 ms of stall (two overlapping measurements of it count once) explain at most 7.
    expect(invariant5([...lateGrant, { ev: 'stall', child: 0, start: 1_200, end: 1_204 }, { ev: 'stall', child: 0, start: 1_202, end: 1_204 }])).toHaveLength(1);
    expect(invariant5([...lateGrant, { ev: 'stall', child: 0, start: 1_200, end: 1_205 }, { ev: 'stall', child: 0, start: 1_250, end: 1_255 }])).toEqual([]);
  });
});

describe('safety checker, invariant 6: a wait that outlived its deadline', () => {
  // wait 1,000 from 1,000: allowed until 1,000 + 1,000 + one call bound (1,000) + slack (2,500) = 5,500; granted at 6,000.
  const longWait: HistoryEvent[] = [
    { ev: 'call', id: '1.1', app: 0, child: 0, worker: 0, via: 'acquire', keys: ['k'], ttl: 300, wait: 1_000, t: 1_000 },
    { ev: 'grant', id: '1.1', t: 6_000, fences: { k: 1 }, token: 't', exp: 6_200, aborted: false },
    { ev: 'release', id: '1.1', t: 6_010 },
    { ev: 'end', id: '1.1', t: 6_011, result: 'ok' },
  ];
  const invariant6 = (events: HistoryEvent[]) => violationsOf(6, events);

  it('flags it when nothing held its process up', () => {
    expect(invariant6(longWait)).toHaveLength(1);
  });

  it('does not judge it when its process stood still for at least the excess (a pause, then a measured stall)', () => {
    expect(invariant6([...longWait, { ev: 'fault', kind: 'pause', target: 0, start: 2_000, end: 2_300 }, { ev: 'stall', child: 0, start: 3_000, end: 3_250 }])).toEqual([]);
  });

  it('still flags it when its process stood still for less than the excess, or another process did', () => {
    expect(invariant6([...longWait, { ev: 'stall', child: 0, start: 3_000, end: 3_100 }])).toHaveLength(1);
    expect(invariant6([...longWait, { ev: 'fault', kind: 'pause', target: 1, start: 2_000, end: 3_000 }])).toHaveLength(1);
  });
});

describe('safety checker, invariant 11: a hold in Redis ends with its owner', () => {
  // Call 1.1 held "k" with token "aa" from 1,000 to its end at 1,400; call 1.2 tried "k" and failed.
  const history: HistoryEvent[] = [
    { ev: 'call', id: '1.1', app: 0, child: 0, worker: 0, via: 'acquire', keys: ['k'], ttl: 10_000, wait: 0, t: 1_000 },
    { ev: 'grant', id: '1.1', t: 1_010, fences: { k: 1 }, token: 'aa', exp: 11_000, aborted: false },
    { ev: 'release', id: '1.1', t: 1_390 },
    { ev: 'end', id: '1.1', t: 1_400, result: 'ok' },
    { ev: 'call', id: '1.2', app: 0, child: 0, worker: 1, via: 'tryAcquire', keys: ['k'], ttl: 10_000, wait: 0, t: 2_000 },
    { ev: 'end', id: '1.2', t: 3_000, result: 'error', error: { name: 'LockUnavailableError', message: 'Lock "k" could not be taken' } },
  ];
  const held = (token: string, first: number, last: number): HistoryEvent => ({ ev: 'held', server: 0, key: 'safety:{k}', token, first, last });
  const invariant11 = (events: HistoryEvent[]) => violationsOf(11, events);

  it("accepts a granted hold seen until its call ended, and a failed attempt's until every call on the key ended", () => {
    expect(invariant11([...history, held('aa', 1_010, 1_400 + 1_000), held('bb', 2_500, 3_000 + 1_000)])).toEqual([]);
  });

  it('flags a granted hold still seen well after its call ended (its release did not take)', () => {
    expect(invariant11([...history, held('aa', 1_010, 5_000)])).toHaveLength(1);
  });

  it('flags a hold no call was granted, still seen well after every call on the key ended', () => {
    expect(invariant11([...history, held('bb', 2_500, 6_000)])).toHaveLength(1);
  });

  it('judges a hold no call was granted by the calls that had started when it was first seen, not by later ones', () => {
    // Call 1.3 started on "k" after "bb" was first seen and is still waiting at 6,000: it cannot own "bb".
    const later: HistoryEvent[] = [
      { ev: 'call', id: '1.3', app: 0, child: 0, worker: 2, via: 'acquire', keys: ['k'], ttl: 600, wait: 5_000, t: 3_500 },
      { ev: 'end', id: '1.3', t: 8_500, result: 'error', error: { name: 'LockNotAcquiredError', message: 'Lock "k" is busy' } },
    ];
    const orphan = { ...held('bb', 2_500, 6_000), firstAnswered: 2_510 } as HistoryEvent;
    expect(invariant11([...history, ...later, orphan])).toHaveLength(1);
    // Without the time of the first answer, any call begun before the last sight may own it (1.3 did not end before it).
    expect(invariant11([...history, ...later, held('bb', 2_500, 6_000)])).toEqual([]);
  });

  it('gives a fault that holds a release back until it is over; lost scripts only lengthen the slack, by less than a ttl', () => {
    const fault = (kind: string, target = 0): HistoryEvent => ({ ev: 'fault', kind, target, start: 1_300, end: 1_600 });
    // Cut at 1,600, reconnected by 4,100 (RECOVERY), released by 5,600 (HOLD_SLACK).
    expect(invariant11([...history, fault('cut'), held('aa', 1_010, 5_000)])).toEqual([]);
    expect(invariant11([...history, fault('cut'), held('aa', 1_010, 9_000)])).toHaveLength(1);
    expect(invariant11([...history, fault('pause'), held('aa', 1_010, 9_000)])).toHaveLength(1);
    expect(invariant11([...history, fault('lostScripts'), held('aa', 1_010, 5_000)])).toEqual([]);
    expect(invariant11([...history, fault('lostScripts'), held('aa', 1_010, 9_000)])).toHaveLength(1);
    // Faults one after the other: each holds the release back until it is over.
    const later: HistoryEvent = { ev: 'fault', kind: 'delay', target: 0, start: 4_000, end: 6_000 };
    expect(invariant11([...history, fault('cut'), later, held('aa', 1_010, 9_000)])).toEqual([]);
  });

  it('is excused only by a fault that can lose a release: its server restarted', () => {
    const fault = (kind: string, target = 0): HistoryEvent => ({ ev: 'fault', kind, target, start: 6_000, end: 6_500 });
    // Restarted after the release: the key may come back from its file, until its ttl.
    expect(invariant11([...history, fault('restart'), held('aa', 1_010, 9_000)])).toEqual([]);
    // Another server restarted: no excuse.
    expect(invariant11([...history, fault('restart', 1), held('aa', 1_010, 9_000)])).toHaveLength(1);
    // A cut long after the release could not have lost it. Nor can one when it was sent, also under
    // Redlock: a release waits in ioredis's queue until the connection is back.
    expect(invariant11([...history, fault('cut'), held('aa', 1_010, 9_000)])).toHaveLength(1);
    const cutAtRelease: HistoryEvent = { ev: 'fault', kind: 'cut', target: 0, start: 1_300, end: 1_600 };
    const redlock = check([...history, cutAtRelease, held('aa', 1_010, 9_000)], { topology: 'redlock', agreedPermits: new Map() });
    expect(redlock.violations.filter((v) => v.invariant === 11)).toHaveLength(1);
  });
});
