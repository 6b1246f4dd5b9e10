import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { AccountsService, type Balance } from './accounts.service.js';
import { amountOf, transferOf, type AmountDto, type TransferDto } from './dto.js';

/**
 * For the demo only, not to copy: the same operations without any lock, so that the demo can
 * show the updates they lose. Each calls the very code that AccountsService runs under its lock.
 */
@Controller('unsafe')
export class UnsafeController {
  constructor(private readonly accounts: AccountsService) {}

  @Post('accounts/:id/deposit')
  @HttpCode(200)
  async deposit(@Param('id') id: string, @Body() body: AmountDto): Promise<Balance> {
    return { id, balance: await this.accounts.credit(id, amountOf(body)) };
  }

  @Post('accounts/:id/withdraw')
  @HttpCode(200)
  async withdraw(@Param('id') id: string, @Body() body: AmountDto): Promise<Balance> {
    return { id, balance: await this.accounts.debit(id, amountOf(body)) };
  }

  @Post('transfers')
  @HttpCode(200)
  transfer(@Body() body: TransferDto): Promise<{ from: Balance; to: Balance }> {
    return this.accounts.move(transferOf(body));
  }
}
