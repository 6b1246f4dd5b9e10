import type { ConfigService } from '@nestjs/config';

/** One Redis for both the locks and the bank's data: REDIS_URL, from the environment or a .env file. */
export function redisUrl(config: ConfigService): string {
  return config.get<string>('REDIS_URL') ?? 'redis://127.0.0.1:6379';
}

/** Names this instance in logs and in the cron job's records: its PORT, else its pid. */
export function instanceId(config: ConfigService): string {
  return config.get<string>('PORT') ?? String(process.pid);
}
