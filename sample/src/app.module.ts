import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
import { LockModule } from 'nestjs-redis-lock';
import { AccountsController } from './accounts.controller.js';
import { AccountsService } from './accounts.service.js';
import { redisUrl } from './config.js';
import { InterestJob } from './interest.job.js';
import { Ledger } from './ledger.js';
import { ReportsController } from './reports.controller.js';
import { ReportsService } from './reports.service.js';
import { UnsafeController } from './unsafe.controller.js';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true }), // REDIS_URL and PORT, from the environment or .env
    ScheduleModule.forRoot(),
    // Imported once, here: every @WithLock in the app (controllers, providers, @Cron jobs) uses it.
    LockModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({ redis: redisUrl(config) }),
    }),
  ],
  controllers: [AccountsController, ReportsController, UnsafeController],
  providers: [Ledger, AccountsService, ReportsService, InterestJob],
})
export class AppModule {}
