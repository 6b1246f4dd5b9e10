import util from 'node:util';

/**
 * The real Node `process`: under Jest the global one is a per-file sandbox copy on which
 * 'unhandledRejection' / 'uncaughtException' never fire (same trick as ./redis-server.ts).
 */
export function hostProcess(): NodeJS.Process {
  const HostFunction = util.inspect.constructor as FunctionConstructor;
  const candidate = new HostFunction('return process')() as NodeJS.Process | undefined;
  return candidate && typeof candidate.on === 'function' ? candidate : process;
}

/** Records every unhandled rejection and uncaught exception until `stop()`. */
export function watchProcessFailures(): { unhandledRejections: unknown[]; uncaughtExceptions: unknown[]; stop(): void } {
  const host = hostProcess();
  const unhandledRejections: unknown[] = [];
  const uncaughtExceptions: unknown[] = [];
  const onRejection = (reason: unknown): void => void unhandledRejections.push(reason);
  const onException = (error: unknown): void => void uncaughtExceptions.push(error);
  host.on('unhandledRejection', onRejection);
  host.on('uncaughtException', onException);
  return {
    unhandledRejections,
    uncaughtExceptions,
    stop() {
      host.off('unhandledRejection', onRejection);
      host.off('uncaughtException', onException);
    },
  };
}
