import util from 'node:util';
function hostProcess(): NodeJS.Process {
  const HostFunction = util.inspect.constructor as FunctionConstructor;
  return new HostFunction('return process')() as NodeJS.Process;
}
it('probe', async () => {
  const host = hostProcess();
  console.log('same?', host === process, 'sandbox listeners', process.listenerCount('unhandledRejection'), 'host', host.listenerCount('unhandledRejection'));
  const seenHost: unknown[] = []; const seenSandbox: unknown[] = [];
  const h = (r: unknown) => seenHost.push(r); const s = (r: unknown) => seenSandbox.push(r);
  host.on('unhandledRejection', h); process.on('unhandledRejection', s);
  void Promise.reject(new Error('x'));
  await new Promise((r) => setTimeout(r, 100));
  host.off('unhandledRejection', h); process.off('unhandledRejection', s);
  console.log('host', seenHost.length, 'sandbox', seenSandbox.length);
  console.log(typeof import.meta.url, import.meta.url);
});
