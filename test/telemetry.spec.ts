import { metrics, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { aborted, startLockApp } from './support/lock-app.js';

describe('OpenTelemetry (when @opentelemetry/api is installed)', () => {
  const spans = new InMemorySpanExporter();
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  let server: RedisServer;

  beforeAll(async () => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
    metrics.setGlobalMeterProvider(meterProvider);
    server = await RedisServer.start();
  });
  afterAll(async () => {
    trace.disable();
    metrics.disable();
    await meterProvider.shutdown();
    await stopAllRedisServers();
  });

  const metricPoints = async (name: string) => {
    await meterProvider.forceFlush();
    // Cumulative temporality: the latest export holds the totals.
    const latest = metricExporter.getMetrics().at(-1);
    const all = (latest?.scopeMetrics ?? []).flatMap((scope) => scope.metrics);
    return all
      .filter((m) => m.descriptor.name === name)
      .flatMap((m) => m.dataPoints as unknown as Array<{ value: unknown; attributes: Record<string, unknown> }>);
  };

  it('records a lock.acquire span per acquisition and busy wait, plus acquire-duration, held and lost metrics', async () => {
    const app = await startLockApp({ redis: server.url, wait: 0 });
    const other = await startLockApp({ redis: server.url, wait: 0, openTelemetry: false });
    const lock = await app.locks.acquire('otel:1');
    const blocker = await other.locks.acquire('otel:2');
    await expect(app.locks.acquire('otel:2', { wait: 30 })).rejects.toThrow('still busy');
    await blocker.release();

    const finished = spans.getFinishedSpans().filter((span) => String(span.attributes['lock.keys']).startsWith('otel:'));
    expect(finished.map((span) => [span.name, span.attributes['lock.keys'], span.attributes['lock.outcome']])).toEqual([
      ['lock.acquire', 'otel:1', 'acquired'],
      ['lock.acquire', 'otel:2', 'timedOut'],
    ]);
    expect(finished[1].status.code).toBe(2); // SpanStatusCode.ERROR
    expect(finished[1].attributes['lock.wait_ms']).toBeGreaterThanOrEqual(30);

    const held = await metricPoints('lock.held');
    expect(held.reduce((sum, point) => sum + Number(point.value), 0)).toBe(1);
    const durations = await metricPoints('lock.acquire.duration');
    expect(durations.map((point) => point.attributes['lock.outcome']).sort()).toEqual(['acquired', 'timedOut']);
    // Keys never become metric attributes (bounded cardinality).
    expect(JSON.stringify(durations.map((point) => point.attributes))).not.toContain('otel:');

    await lock.release();
    expect((await metricPoints('lock.held')).reduce((sum, point) => sum + Number(point.value), 0)).toBe(0);

    const doomed = await app.locks.acquire('otel:3', { ttl: 600 });
    const raw = server.client();
    await raw.del('lock:{otel:3}');
    await aborted(doomed.signal);
    expect((await metricPoints('lock.lost')).reduce((sum, point) => sum + Number(point.value), 0)).toBe(1);
    expect((await metricPoints('lock.held')).reduce((sum, point) => sum + Number(point.value), 0)).toBe(0);
    await doomed.release();
    await raw.quit();
    await app.close();
    await other.close();
  });
});
