import 'reflect-metadata';
import type { INestApplication, NestApplicationOptions } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { pathToFileURL } from 'node:url';
import { AppModule } from './app.module.js';
import { Ledger } from './ledger.js';

export interface InProcessInstances {
  apps: INestApplication[];
  /** The data they share (a MemoryLedger). */
  ledger: Ledger;
  /** Stops every app: cron jobs stopped, locks released. */
  close(): Promise<void>;
}

/**
 * Several instances of the app in ONE process, without Redis: each is the same AppModule with
 * SAMPLE_STORE=memory, so the locks are `LockModule.forRoot({ store: 'memory' })` and the data a
 * MemoryLedger, both shared by the apps in this process. They contend for the locks as instances
 * behind one Redis would. Nothing here locks across processes: for that, run main.ts once per
 * instance, against Redis.
 */
export async function startInProcess(ports: number[], options: NestApplicationOptions = {}): Promise<InProcessInstances> {
  const apps: INestApplication[] = [];
  const close = async () => void (await Promise.all(apps.map((app) => app.close())));
  try {
    for (const port of ports) {
      const app = await NestFactory.create(AppModule.forRoot({ PORT: String(port), SAMPLE_STORE: 'memory' }), options);
      apps.push(app);
      await app.listen(port);
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { apps, ledger: apps[0].get(Ledger), close };
}

// `node sample/dist/in-process.js`: three instances on PORT, PORT+1 and PORT+2 (default 3000).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const first = Number(process.env.PORT ?? 3000);
  const instances = await startInProcess([first, first + 1, first + 2]);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void instances.close().then(() => process.exit(0)));
  }
  console.log(
    `Sample app: 3 instances in this process (pid ${process.pid}), store: memory, listening on ` +
      `http://127.0.0.1:${first}, :${first + 1} and :${first + 2}`,
  );
}
