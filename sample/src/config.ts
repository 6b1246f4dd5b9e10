import type { ConfigService } from '@nestjs/config';
import type { LockModuleOptions } from 'nestjs-redis-lock';

/**
 * Where the locks and the bank's data live: SAMPLE_STORE, from the environment or a .env file.
 * - `redis` (the default): in the Redis at REDIS_URL, shared by every instance, in any process.
 * - `memory`: in this process, shared by the apps in it and by nothing else. For trying the
 *   sample without Redis (see in-process.ts); it does not lock across processes.
 */
export type SampleStore = 'redis' | 'memory';

export function sampleStore(config: ConfigService): SampleStore {
  const store = config.get<string>('SAMPLE_STORE') ?? 'redis';
  if (store !== 'redis' && store !== 'memory') {
    throw new Error(`SAMPLE_STORE must be 'redis' or 'memory', not '${store}'`);
  }
  return store;
}

/** One Redis for both the locks and the bank's data: REDIS_URL, from the environment or a .env file. */
export function redisUrl(config: ConfigService): string {
  return config.get<string>('REDIS_URL') ?? 'redis://127.0.0.1:6379';
}

/** The LockModule options for that store; `appName` names this instance in `nestjs-redis-lock watch`. */
export function lockOptions(config: ConfigService): LockModuleOptions {
  const appName = `sample:${instanceId(config)}`;
  return sampleStore(config) === 'memory' ? { store: 'memory', appName } : { redis: redisUrl(config), appName };
}

/** Names this instance in logs and in the cron job's records: its PORT, else its pid. */
export function instanceId(config: ConfigService): string {
  return config.get<string>('PORT') ?? String(process.pid);
}
