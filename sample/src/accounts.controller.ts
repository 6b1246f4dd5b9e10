import { BadRequestException, Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { AccountsService } from './accounts.service.js';

interface Balance {
  id: string;
  balance: number;
}

@Controller()
export class AccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Get('accounts/:id')
  async get(@Param('id') id: string): Promise<Balance> {
    return { id, balance: await this.accounts.balance(id) };
  }

  /** Safe: one deposit per account at a time, whichever instance receives it. */
  @Post('accounts/:id/deposit')
  @HttpCode(200)
  async deposit(@Param('id') id: string, @Body() body: { amount: number }): Promise<Balance> {
    return { id, balance: await this.accounts.deposit(id, amountOf(body)) };
  }

  /** For comparison only: the same deposit without the lock. */
  @Post('unsafe/accounts/:id/deposit')
  @HttpCode(200)
  async depositUnsafe(@Param('id') id: string, @Body() body: { amount: number }): Promise<Balance> {
    return { id, balance: await this.accounts.depositUnsafe(id, amountOf(body)) };
  }
}

function amountOf(body: { amount?: unknown } | undefined): number {
  const amount = body?.amount;
  if (typeof amount !== 'number' || !Number.isFinite(amount) || amount <= 0) {
    throw new BadRequestException('amount must be a positive number');
  }
  return amount;
}
