import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { AccountsService, type Balance } from './accounts.service.js';
import { amountOf, transferOf, type AmountDto, type TransferDto } from './dto.js';

@Controller()
export class AccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Get('accounts/:id')
  async get(@Param('id') id: string): Promise<Balance> {
    return { id, balance: await this.accounts.balance(id) };
  }

  @Post('accounts/:id/deposit')
  @HttpCode(200)
  async deposit(@Param('id') id: string, @Body() body: AmountDto): Promise<Balance> {
    return { id, balance: await this.accounts.deposit(id, amountOf(body)) };
  }

  @Post('accounts/:id/withdraw')
  @HttpCode(200)
  async withdraw(@Param('id') id: string, @Body() body: AmountDto): Promise<Balance> {
    return { id, balance: await this.accounts.withdraw(id, amountOf(body)) };
  }

  @Post('transfers')
  @HttpCode(200)
  transfer(@Body() body: TransferDto): Promise<{ from: Balance; to: Balance }> {
    return this.accounts.transfer(transferOf(body));
  }
}
