import type { LockEvent } from '../interfaces/lock-event.interface.js';

/*
 * The small part of @opentelemetry/api used here, typed locally so that this package's types
 * never require @opentelemetry/api: it is an optional peer, loaded only if installed.
 */
type Attributes = Record<string, string | number | boolean>;
interface Span {
  isRecording?(): boolean;
  setAttributes(attributes: Attributes): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  end(endTime?: number): void;
}
interface OpenTelemetryApi {
  trace: { getTracer(name: string): { startSpan(name: string, options?: { startTime?: number; attributes?: Attributes }): Span } };
  metrics: {
    getMeter(name: string): {
      createHistogram(name: string, options?: { unit?: string; description?: string }): { record(value: number, attributes?: Attributes): void };
      createUpDownCounter(name: string, options?: { description?: string }): { add(value: number, attributes?: Attributes): void };
      createCounter(name: string, options?: { description?: string }): { add(value: number, attributes?: Attributes): void };
    };
  };
  SpanStatusCode: { ERROR: number };
}

const INSTRUMENTATION = 'nestjs-redis-lock';

/**
 * OpenTelemetry spans and metrics from lock events, when `@opentelemetry/api` is installed:
 * a `lock.acquire` span per acquisition (covering the wait), the `lock.acquire.duration`
 * histogram, the `lock.held` up-down counter and the `lock.lost` counter. Metric attributes carry
 * only the outcome, never keys, so cardinality stays bounded; span attributes carry the keys.
 */
export class LockTelemetry {
  private readonly tracer;
  private readonly acquireDuration;
  private readonly held;
  private readonly lost;

  constructor(private readonly api: OpenTelemetryApi) {
    this.tracer = api.trace.getTracer(INSTRUMENTATION);
    const meter = api.metrics.getMeter(INSTRUMENTATION);
    this.acquireDuration = meter.createHistogram('lock.acquire.duration', {
      unit: 'ms',
      description: 'Time from asking for a lock to getting it or giving up',
    });
    this.held = meter.createUpDownCounter('lock.held', { description: 'Locks held by this process' });
    this.lost = meter.createCounter('lock.lost', { description: 'Locks whose lease could no longer be guaranteed' });
  }

  /** Loads @opentelemetry/api if the app has it; otherwise telemetry is off at no cost. */
  static async load(): Promise<LockTelemetry | undefined> {
    try {
      const api = (await import('@opentelemetry/api' as string)) as OpenTelemetryApi;
      return new LockTelemetry(api);
    } catch {
      return undefined;
    }
  }

  readonly record = (event: LockEvent): void => {
    switch (event.type) {
      case 'acquired':
        this.acquireDuration.record(event.waitedMs, { 'lock.outcome': 'acquired' });
        this.held.add(1);
        this.span(event.waitedMs, () => ({ 'lock.keys': event.keys.join(','), 'lock.outcome': 'acquired', 'lock.fence': event.fences[0] }));
        break;
      case 'busy':
        this.acquireDuration.record(event.waitedMs, { 'lock.outcome': event.outcome });
        this.span(event.waitedMs, () => ({ 'lock.keys': event.keys.join(','), 'lock.outcome': event.outcome }), 'lock stayed busy');
        break;
      case 'released':
        this.held.add(-1);
        break;
      case 'lost':
        if (event.leader) break; // a leadership's lock reports its own 'lost' too
        this.held.add(-1);
        this.lost.add(1);
        break;
      case 'extended':
        break;
    }
  };

  /** The span of one acquisition, recorded when it ends (its start is known from the wait). */
  private span(waitedMs: number, attributes: () => Attributes, error?: string): void {
    const end = Date.now();
    const span = this.tracer.startSpan('lock.acquire', { startTime: end - waitedMs });
    // Without a tracing SDK (or when sampled out) the span records nothing: skip building attributes.
    if (span.isRecording?.() === false) return;
    span.setAttributes({ ...attributes(), 'lock.wait_ms': waitedMs });
    if (error) span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: error });
    span.end(end);
  }
}
