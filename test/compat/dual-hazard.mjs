#!/usr/bin/env node
/**
 * Dual-package hazard probe: loads BOTH builds of the package into one process (the ESM build with
 * `import`, the CommonJS build with `require`, through the package's own "exports") and checks
 * that mixing them fails loudly instead of silently running code unlocked. Prints which state is
 * per copy. See README.md here. Needs `npm run build` and Node >= 20.19 (the repo's Nest 12 is ESM-only).
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const esm = await import('nestjs-redis-lock');
const esmTerminus = await import('nestjs-redis-lock/terminus');
const cjs = require('nestjs-redis-lock');
const cjsTerminus = require('nestjs-redis-lock/terminus');
const { Injectable, Module, HttpException } = await import('@nestjs/common');
const { Test } = await import('@nestjs/testing');

const checks = [];
const check = async (name, fn) => {
  await fn();
  checks.push(name);
  console.log(`ok - ${name}`);
};

assert.notEqual(esm.LockService, cjs.LockService, 'expected two copies in this probe');

await check('each build is one module graph: "./terminus" injects the LockService of its own format', () => {
  assert.equal(Reflect.getMetadata('design:paramtypes', cjsTerminus.LockHealthIndicator)[1], cjs.LockService);
  assert.equal(Reflect.getMetadata('design:paramtypes', esmTerminus.LockHealthIndicator)[1], esm.LockService);
});

await check('a LockNotAcquiredError of either copy is a Nest 409 (one @nestjs/common)', () => {
  for (const { LockNotAcquiredError } of [esm, cjs]) {
    const error = new LockNotAcquiredError('busy', ['k'], 0);
    assert.ok(error instanceof HttpException);
    assert.equal(error.getStatus(), 409);
  }
});

async function appWith(lockCopy, decoratorCopy) {
  class Orders {
    async place(id) {
      void id;
      return decoratorCopy.currentLock()?.keys;
    }
  }
  const descriptor = Object.getOwnPropertyDescriptor(Orders.prototype, 'place');
  Object.defineProperty(Orders.prototype, 'place', Reflect.decorate([decoratorCopy.WithLock('order:<0>', { wait: 0 })], Orders.prototype, 'place', descriptor));
  Injectable()(Orders);
  const moduleRef = await Test.createTestingModule({ imports: [lockCopy.LockModule.forRoot({ store: 'memory' })], providers: [Orders] }).compile();
  await moduleRef.init();
  return { moduleRef, orders: moduleRef.get(Orders) };
}

await check('@WithLock under the LockModule of its own copy runs locked (control for the next check)', async () => {
  for (const copy of [esm, cjs]) {
    const { moduleRef, orders } = await appWith(copy, copy);
    assert.deepEqual(await orders.place('1'), ['order:1']);
    await moduleRef.close();
  }
});

await check('@WithLock from one copy under the LockModule of the other throws LockConfigError when called (never runs unlocked)', async () => {
  for (const [lockCopy, decoratorCopy] of [[cjs, esm], [esm, cjs]]) {
    const { moduleRef, orders } = await appWith(lockCopy, decoratorCopy);
    await assert.rejects(orders.place('1'), (error) => error instanceof decoratorCopy.LockConfigError);
    await moduleRef.close();
  }
});

await check('injecting the LockService of the other copy fails at startup (Nest cannot resolve it)', async () => {
  class NeedsLocks {
    constructor(locks) {
      this.locks = locks;
    }
  }
  Injectable()(NeedsLocks);
  Reflect.defineMetadata('design:paramtypes', [esm.LockService], NeedsLocks);
  Module({})(NeedsLocks);
  await assert.rejects(
    Test.createTestingModule({ imports: [cjs.LockModule.forRoot({ store: 'memory' })], providers: [NeedsLocks] }).compile(),
    /resolve dependencies/,
  );
});

// Per-copy state, printed (documented in README.md here), not asserted: these are the known costs.
{
  const a = await appWith(esm, esm);
  const b = await appWith(cjs, cjs);
  const la = a.moduleRef.get(esm.LockService);
  const lb = b.moduleRef.get(cjs.LockService);
  const held = await la.acquire('probe:shared');
  const other = await lb.tryAcquire('probe:shared');
  console.log(`info - store 'memory' shared between the two copies: ${other === null ? 'yes' : 'no (one keyspace per copy)'}`);
  if (other) await other.release();
  const seen = await la.withLock('probe:current', async () => [esm.currentLock() !== undefined, cjs.currentLock() !== undefined]);
  console.log(`info - currentLock() inside a lock of the ESM copy: ESM copy sees it: ${seen[0]}, CJS copy sees it: ${seen[1]}`);
  console.log(`info - new cjs.LockNotAcquiredError(...) instanceof esm.LockNotAcquiredError: ${new cjs.LockNotAcquiredError('x', ['k'], 0) instanceof esm.LockNotAcquiredError}`);
  await held.release();
  await a.moduleRef.close();
  await b.moduleRef.close();
}
console.log(`dual-hazard: ${checks.length} checks passed`);
