import { ReleaseWaiters } from '../lib/release-waiters.js';

// In-process bookkeeping only: which grants heard from the store reach which waiter. A grant can
// be heard twice (the release's own reply and the release channel), and every instance hears
// every other instance's grants; only those for this service's running waits may be kept.
describe('ReleaseWaiters: grants heard before or after their waiter', () => {
  const grantTo = (token: string, fence: number) => ({ key: 'k', releasedBy: token, grantedTo: { token, fence, attempt: 1 } });

  it('keeps a grant to a running wait that has no waiter yet, and hands it over when it enqueues', () => {
    const hub = new ReleaseWaiters();
    hub.expect('t1');
    hub.onRelease(grantTo('t1', 7));
    const waiter = hub.enqueue('k', 't1');
    expect(waiter.granted).toEqual({ fence: 7, attempt: 1 });
  });

  it('drops a grant to a token no wait of this service expects (another instance, or a wait that ended)', () => {
    const hub = new ReleaseWaiters();
    hub.onRelease(grantTo('other-instance', 3));
    hub.expect('t2');
    hub.onRelease(grantTo('t2', 4));
    hub.forget('t2'); // the wait ended: the copy above, and any later one, is stale
    hub.onRelease(grantTo('t2', 4));
    expect(hub.enqueue('k', 'other-instance').granted).toBeUndefined();
    expect(hub.enqueue('k', 't2').granted).toBeUndefined();
  });

  it('wakes a sleeping waiter with a grant and with its second copy alike', async () => {
    const hub = new ReleaseWaiters();
    hub.expect('t3');
    const waiter = hub.enqueue('k', 't3');
    const woke = waiter.sleep(60_000, undefined);
    hub.onRelease(grantTo('t3', 9));
    expect(await woke).toBe('granted');
    waiter.granted = undefined; // taken
    hub.onRelease(grantTo('t3', 9)); // the copy from the release channel
    expect(waiter.granted).toEqual({ fence: 9, attempt: 1 });
    waiter.dispose();
    hub.forget('t3');
    expect(hub.size).toBe(0);
  });
});
