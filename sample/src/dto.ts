import { BadRequestException } from '@nestjs/common';

/** Amounts are whole cents. */
export class AmountDto {
  amount!: number;
}

export class TransferDto {
  from!: string;
  to!: string;
  amount!: number;
}

// Hand-written checks keep the sample free of a validation library; use ValidationPipe in your app.

export function amountOf(body: Partial<AmountDto> | undefined): number {
  const amount = body?.amount;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) {
    throw new BadRequestException('amount must be a positive whole number of cents');
  }
  return amount;
}

export function transferOf(body: Partial<TransferDto> | undefined): TransferDto {
  const { from, to } = body ?? {};
  if (typeof from !== 'string' || !from || typeof to !== 'string' || !to || from === to) {
    throw new BadRequestException('from and to must be two different account ids');
  }
  return { from, to, amount: amountOf(body) };
}
