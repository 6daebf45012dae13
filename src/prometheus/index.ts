/**
 * partita/prometheus: an engine's metrics in a prom-client registry (prom-client is an optional
 * peer dependency: `npm install prom-client`). No batch or partition ids in labels: only `job` and
 * `status`, whose values are few.
 */
import type { Engine } from '../engine.js';
import { ValidationError } from '../errors.js';
import { type BatchStatus, isFinalStatus } from '../summary.js';
import { BatchTracker } from './batches.js';
import { loadPromClient } from './prom-client.js';

/**
 * What registerMetrics needs of a registry: prom-client's `Registry` (or its global `register`).
 * Structural, so that these types do not require prom-client's.
 */
export interface MetricsRegistry {
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
  metrics(): Promise<string>;
}

/** The metric names, for dashboards and alerts. */
export const METRIC_NAMES = [
  'partita_partitions_total',
  'partita_partition_duration_seconds',
  'partita_batches',
  'partita_batch_duration_seconds',
  'partita_queue_length',
  'partita_pool_utilization',
  'partita_pool_threads',
  'partita_partitions_per_second',
  'partita_store_errors_total',
] as const;

/** Partition run times: 1 ms (no-op work) to 5 minutes. */
const PARTITION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Batch run times: a tenth of a second to a day. */
const BATCH_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400];

/**
 * Register the engine's metrics in `registry` (default: prom-client's global `register`) and
 * return the function that removes them again. Counters and histograms count from this call on,
 * so call it before `engine.start()` to count the batches that start resumes.
 *
 * | metric | type | labels | from |
 * |---|---|---|---|
 * | `partita_partitions_total` | counter | job, status | each settled partition (succeeded, failed) |
 * | `partita_partition_duration_seconds` | histogram | job | its run time over all attempts |
 * | `partita_batches` | gauge | job, status | batches this engine holds now (never a final status) |
 * | `partita_batch_duration_seconds` | histogram | job, status | each finished batch (final status) |
 * | `partita_queue_length` | gauge | | batches QUEUED here |
 * | `partita_pool_utilization` | gauge | | worker pool utilization, 0 to 1 |
 * | `partita_pool_threads` | gauge | | worker threads |
 * | `partita_partitions_per_second` | gauge | | partitions settled per second, last 10 s |
 * | `partita_store_errors_total` | counter | | store errors (each retried) |
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * import { registerMetrics } from 'partita/prometheus';
 *
 * const registry = new Registry();
 * const unregister = registerMetrics(engine, registry);
 * await engine.start();
 * // serve `await registry.metrics()` with `registry.contentType` at GET /metrics
 * ```
 */
export function registerMetrics(engine: Engine, registry?: MetricsRegistry): () => void {
  // Checked first, and as VALIDATION: a wrong argument threw a TypeError from inside (outside probe).
  const e = engine as Partial<Engine> | null | undefined;
  if (typeof e?.observe !== 'function' || typeof e.metrics !== 'function')
    throw new ValidationError(
      'registerMetrics: expected an engine from createEngine() as its first argument',
      [{ path: 'engine', message: 'expected an engine from createEngine()' }],
    );
  const r = registry as { getSingleMetric?: unknown; registerMetric?: unknown } | null | undefined;
  if (
    registry !== undefined &&
    (typeof r?.getSingleMetric !== 'function' || typeof r.registerMetric !== 'function')
  )
    throw new ValidationError('registerMetrics: expected a prom-client Registry as its second argument', [
      { path: 'registry', message: 'expected a prom-client Registry' },
    ]);
  const prom = loadPromClient();
  const registers = [(registry ?? prom.register) as InstanceType<typeof prom.Registry>];
  for (const name of METRIC_NAMES)
    if (registers[0]!.getSingleMetric(name))
      throw new ValidationError(
        `partita metrics are registered in this registry already ("${name}"); call the function registerMetrics returned first, or use another registry`,
        [{ path: 'registry', message: 'already holds partita metrics' }],
      );

  const partitions = new prom.Counter({
    name: 'partita_partitions_total',
    help: 'Partitions settled by this engine, by job and outcome.',
    labelNames: ['job', 'status'] as const,
    registers,
  });
  const partitionSeconds = new prom.Histogram({
    name: 'partita_partition_duration_seconds',
    help: 'Time each settled partition spent running, over all its attempts.',
    labelNames: ['job'] as const,
    buckets: PARTITION_BUCKETS,
    registers,
  });
  const batchSeconds = new prom.Histogram({
    name: 'partita_batch_duration_seconds',
    help: 'Duration of each batch this engine finished, from the start of processing to its final status.',
    labelNames: ['job', 'status'] as const,
    buckets: BATCH_BUCKETS,
    registers,
  });
  const tracker = new BatchTracker();
  const seen = new Set<string>();
  new prom.Gauge({
    name: 'partita_batches',
    help: 'Batches this engine holds now, by job and status (QUEUED, PROCESSING, FINALIZING, ...; never a final status).',
    labelNames: ['job', 'status'] as const,
    registers,
    collect() {
      const rows = tracker.counts(engine.metrics().batches);
      // Series once seen stay, at 0, rather than vanish: rate() and alerts see a drop to zero.
      for (const key of seen) {
        const [job, status] = key.split('\u0000') as [string, BatchStatus];
        this.set({ job, status }, 0);
      }
      for (const { job, status, count } of rows) {
        seen.add(`${job}\u0000${status}`);
        this.set({ job, status }, count);
      }
    },
  });
  const fromMetrics = (name: string, help: string, read: (m: ReturnType<Engine['metrics']>) => number) =>
    new prom.Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(engine.metrics()));
      },
    });
  fromMetrics(
    'partita_queue_length',
    'Batches QUEUED in this engine, waiting for admission.',
    (m) => m.queued,
  );
  fromMetrics(
    'partita_pool_utilization',
    'Utilization of the worker thread pool, 0 to 1.',
    (m) => m.poolUtilization,
  );
  fromMetrics('partita_pool_threads', 'Threads in the worker pool.', (m) => m.poolThreads);
  fromMetrics(
    'partita_partitions_per_second',
    'Partitions settled per second over the last 10 seconds.',
    (m) => m.partitionsPerSecond,
  );
  let storeErrorsSeen = engine.metrics().storeErrors;
  new prom.Counter({
    name: 'partita_store_errors_total',
    help: 'Store errors this engine met (each one retried; data is kept in memory meanwhile).',
    registers,
    collect() {
      // The engine counts; the counter follows by the difference since the last scrape.
      const now = engine.metrics().storeErrors;
      if (now > storeErrorsSeen) this.inc(now - storeErrorsSeen);
      storeErrorsSeen = now;
    },
  });

  const stop = engine.observe((event) => {
    if (event.type === 'partition') {
      partitions.inc({ job: event.job, status: event.status });
      partitionSeconds.observe({ job: event.job }, event.durationMs / 1000);
      return;
    }
    tracker.hear(event);
    if (isFinalStatus(event.status) && event.durationMs !== undefined)
      batchSeconds.observe({ job: event.job, status: event.status }, event.durationMs / 1000);
  });
  return () => {
    stop();
    for (const name of METRIC_NAMES) registers[0]!.removeSingleMetric(name);
  };
}
