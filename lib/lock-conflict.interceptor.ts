import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { catchError, throwError, type Observable } from 'rxjs';
import { LockNotAcquiredError } from './errors.js';

/**
 * Adds `Retry-After` (whole seconds, rounded up) to the 409 an HTTP handler answers when its lock
 * stayed busy, on Express and Fastify alike. The error itself goes on to Nest's exception handling
 * unchanged; other errors and other transports are not touched.
 */
@Injectable()
export class LockConflictInterceptor implements NestInterceptor {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    return next.handle().pipe(
      catchError((error: unknown) => {
        const adapter = this.adapterHost.httpAdapter;
        if (error instanceof LockNotAcquiredError && error.retryAfterMs !== undefined && adapter) {
          const seconds = Math.max(1, Math.ceil(error.retryAfterMs / 1000));
          adapter.setHeader(context.switchToHttp().getResponse(), 'Retry-After', String(seconds));
        }
        return throwError(() => error);
      }),
    );
  }
}
