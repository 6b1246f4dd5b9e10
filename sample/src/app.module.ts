import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
import { LockModule } from 'nestjs-redis-lock';
import { AccountsController } from './accounts.controller.js';
import { AccountsService } from './accounts.service.js';
import { lockOptions } from './config.js';
import { InterestJob } from './interest.job.js';
import { createLedger, Ledger } from './ledger.js';
import { ReconcilerJob } from './reconciler.job.js';
import { ReportsController } from './reports.controller.js';
import { ReportsService } from './reports.service.js';
import { UnsafeController } from './unsafe.controller.js';

@Module({
  imports: [
    ScheduleModule.forRoot(),
    // Imported once, here: every @WithLock in the app (controllers, providers, @Cron jobs) uses it.
    // { redis: REDIS_URL }, or { store: 'memory' } with SAMPLE_STORE=memory (see config.ts).
    LockModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: lockOptions,
    }),
  ],
  controllers: [AccountsController, ReportsController, UnsafeController],
  providers: [
    { provide: Ledger, inject: [ConfigService], useFactory: createLedger }, // RedisLedger or MemoryLedger
    AccountsService,
    ReportsService,
    InterestJob,
    ReconcilerJob, // @Leader: runs on one instance at a time
  ],
})
export class AppModule {
  /**
   * The app, configured by ConfigModule from the environment or a .env file (REDIS_URL, PORT,
   * SAMPLE_STORE). `overrides` win over both: in-process.ts runs three instances in one process,
   * which share one environment but each need their own PORT.
   */
  static forRoot(overrides: Record<string, string> = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot({ isGlobal: true, load: [() => overrides] })],
    };
  }
}
