import { Injectable, UnprocessableEntityException } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { WithLock } from 'nestjs-redis-lock';
import type { TransferDto } from './dto.js';
import { Ledger } from './ledger.js';

export interface Balance {
  id: string;
  balance: number;
}

/**
 * A toy bank. Each operation reads a balance, works a moment, and writes the new balance. Two
 * requests for the same account running at once, in one instance or in two, would both read the
 * same balance, and the later write would wipe out the earlier one. `@WithLock` makes the
 * operations on one account take turns across every instance; other accounts are not held up.
 *
 * A lock still busy after `wait` (10 s by default) rejects with `LockNotAcquiredError`, which an
 * HTTP caller receives as 409 Conflict with nothing to configure.
 */
@Injectable()
export class AccountsService {
  constructor(private readonly ledger: Ledger) {}

  balance(id: string): Promise<number> {
    return this.ledger.balance(id);
  }

  @WithLock('account:<id>') // <id>: the parameter named id
  deposit(id: string, amount: number): Promise<number> {
    return this.credit(id, amount);
  }

  @WithLock('account:<id>')
  withdraw(id: string, amount: number): Promise<number> {
    return this.debit(id, amount);
  }

  /** Locks both accounts, all or nothing: two transfers in opposite directions cannot deadlock. */
  @WithLock((t: TransferDto) => [`account:${t.from}`, `account:${t.to}`])
  transfer(t: TransferDto): Promise<{ from: Balance; to: Balance }> {
    return this.move(t);
  }

  // --- The unprotected read-modify-writes. Call them only while holding the account's lock, as
  // --- the methods above do; UnsafeController calls them directly to show what goes wrong.

  async credit(id: string, amount: number): Promise<number> {
    const balance = await this.ledger.balance(id);
    await sleep(2); // stands for real work between read and write (fraud check, audit log...)
    await this.ledger.setBalance(id, balance + amount);
    return balance + amount;
  }

  async debit(id: string, amount: number): Promise<number> {
    const balance = await this.ledger.balance(id);
    if (balance < amount) {
      throw new UnprocessableEntityException(`account ${id} holds ${balance}, cannot take ${amount}`);
    }
    await sleep(2);
    await this.ledger.setBalance(id, balance - amount);
    return balance - amount;
  }

  async move({ from, to, amount }: TransferDto): Promise<{ from: Balance; to: Balance }> {
    const left = await this.debit(from, amount); // throws before anything moved if funds are short
    const arrived = await this.credit(to, amount);
    return { from: { id: from, balance: left }, to: { id: to, balance: arrived } };
  }
}
