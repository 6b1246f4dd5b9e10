import { Module } from '@nestjs/common';
import { LockModule } from 'nestjs-redis-lock';
import { AccountsController } from './accounts.controller.js';
import { AccountsService } from './accounts.service.js';
import { redisUrl } from './redis-url.js';

@Module({
  imports: [LockModule.forRootAsync({ useFactory: () => ({ redis: redisUrl() }) })],
  controllers: [AccountsController],
  providers: [AccountsService],
})
export class AppModule {}
