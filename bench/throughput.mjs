// Bench 1, throughput: no-op worker partitions through partita (memory, SQLite, PostgreSQL stores)
// against raw Piscina running the same tasks on the same threads, alternately, in one process run.
// Then 1 ms CPU partitions: efficiency against the ideal (threads × 1,000/s).
import { budget, envInt, envList, log, median, printBudgets, printTable, round } from './lib/common.mjs';
import { openStore, timePartitaBatch, timeRawPiscina, workerJob } from './lib/engine.mjs';

export const description = 'partita vs raw Piscina: no-op and 1 ms CPU partitions';

export default async function throughput() {
  const n = envInt('BENCH_N', 100_000);
  const cpuN = envInt('BENCH_CPU_N', 10_000);
  const cpuMs = envInt('BENCH_CPU_MS', 1);
  const rounds = Math.max(1, envInt('BENCH_ROUNDS', 2));
  const threads = envInt('BENCH_THREADS', 2);
  const window = envInt('BENCH_WINDOW', 1000);
  const concurrencies = envList('BENCH_CONCURRENCY', ['256', '1024']).map(Number);
  const cpuConcurrency = envInt('BENCH_CPU_CONCURRENCY', 256);
  const stores = envList('BENCH_STORES', ['memory', 'sqlite', 'postgres']);
  const skipped = {};
  const errors = [];

  if (stores.includes('postgres')) {
    const probe = await openStore('postgres', 'probe');
    if (probe.skip) skipped.postgres = probe.skip;
    else await probe.cleanup();
    if (probe.skip) log(`throughput: PostgreSQL skipped: ${probe.skip}`);
  }
  const kinds = stores.filter((k) => !skipped[k]);
  const configs = kinds.flatMap((store) =>
    concurrencies.map((c) => ({ store, concurrency: c, name: `partita ${store} c=${c}` })),
  );

  // --- no-op partitions ---------------------------------------------------------------------------
  const runs = [];
  const rawRun = async (round, label, w) => {
    const t = await timeRawPiscina({ file: 'noop.mjs', threads, n, window: w });
    const run = { round, config: label, kind: 'raw', ...t, rate: (n / t.totalMs) * 1000 };
    runs.push(run);
    log(`throughput: round ${round} ${label}: ${Math.round(run.rate)}/s`);
    return run;
  };
  for (let round = 1; round <= rounds; round++) {
    await rawRun(round, 'raw piscina all-at-once', n);
    // Alternate raw and partita; the second round goes the other way so order effects show.
    const order = round % 2 === 1 ? configs : [...configs].reverse();
    let before = await rawRun(round, `raw piscina window=${window}`, window);
    for (const cfg of order) {
      let run;
      const opened = await openStore(cfg.store, `tp${cfg.concurrency}`);
      if (opened.skip) {
        skipped[cfg.store] = opened.skip;
        continue;
      }
      try {
        const job = await workerJob('noop', 'noop.mjs', cfg.concurrency);
        const t = await timePartitaBatch({ job, store: opened.store, threads, n });
        run = {
          round,
          config: cfg.name,
          kind: 'partita',
          store: cfg.store,
          concurrency: cfg.concurrency,
          ...t,
          rate: (n / t.totalMs) * 1000,
        };
        runs.push(run);
        log(
          `throughput: round ${round} ${cfg.name}: ${Math.round(run.rate)}/s (submit ${Math.round(t.submitMs)} ms)`,
        );
      } catch (err) {
        errors.push(`${cfg.name}: ${err.stack ?? err}`);
        log(`throughput: ${cfg.name} FAILED: ${err.stack ?? err}`);
      } finally {
        await opened.cleanup().catch(() => {});
      }
      const after = await rawRun(round, `raw piscina window=${window}`, window);
      if (run) run.ratio = run.rate / ((before.rate + after.rate) / 2);
      before = after;
    }
  }

  printTable(
    `throughput: ${n.toLocaleString('en-US')} no-op partitions, ${threads} threads (every run, in order)`,
    [
      'round',
      'config',
      'submit s',
      'process s',
      'total s',
      'partitions/s',
      'process-only/s',
      'main busy µs/part',
      'main CPU µs/part',
      'ratio vs adjacent raw',
    ],
    runs.map((r) => ({
      round: r.round,
      config: r.config,
      'submit s': r.submitMs / 1000,
      'process s': r.processMs / 1000,
      'total s': r.totalMs / 1000,
      'partitions/s': r.rate,
      'process-only/s': (n / r.processMs) * 1000,
      'main busy µs/part': (r.mainBusyMs * 1000) / n,
      'main CPU µs/part': r.mainCpuMs === undefined ? undefined : (r.mainCpuMs * 1000) / n,
      'ratio vs adjacent raw': r.ratio,
    })),
  );

  const labels = [...new Set(runs.map((r) => r.config))];
  const summary = labels.map((config) => {
    const rs = runs.filter((r) => r.config === config);
    const rates = rs.map((r) => r.rate);
    const ratios = rs.map((r) => r.ratio).filter((x) => x !== undefined);
    return {
      config,
      runs: rs.length,
      median_per_s: round(median(rates)),
      min_per_s: round(Math.min(...rates)),
      max_per_s: round(Math.max(...rates)),
      process_only_per_s: round(median(rs.map((r) => (n / r.processMs) * 1000))),
      submit_s: round(median(rs.map((r) => r.submitMs / 1000))),
      main_us_per_partition: round(median(rs.map((r) => (r.mainBusyMs * 1000) / n))),
      main_cpu_us_per_partition:
        rs[0]?.mainCpuMs === undefined ? undefined : round(median(rs.map((r) => (r.mainCpuMs * 1000) / n))),
      ratio_median: ratios.length ? round(median(ratios)) : undefined,
      ratio_min: ratios.length ? round(Math.min(...ratios)) : undefined,
      ratio_max: ratios.length ? round(Math.max(...ratios)) : undefined,
    };
  });
  printTable(
    'throughput: summary (median over rounds; ratio = partita / mean of the raw window runs just before and after)',
    [
      'config',
      'runs',
      'median_per_s',
      'min_per_s',
      'max_per_s',
      'process_only_per_s',
      'submit_s',
      'main_us_per_partition',
      'main_cpu_us_per_partition',
      'ratio_median',
      'ratio_min',
      'ratio_max',
    ],
    summary,
  );

  // --- 1 ms CPU partitions ------------------------------------------------------------------------
  const ideal = threads * (1000 / cpuMs);
  const cpuRuns = [];
  const cpuKinds = kinds.filter((k) => k !== 'postgres');
  for (let round = 1; round <= rounds; round++) {
    const rawCpu = async () => {
      const t = await timeRawPiscina({
        file: 'burn.mjs',
        threads,
        n: cpuN,
        window,
        task: () => ({ ms: cpuMs }),
      });
      const r = { round, config: `raw piscina window=${window}`, ...t, rate: (cpuN / t.totalMs) * 1000 };
      cpuRuns.push(r);
      log(`throughput: cpu round ${round} ${r.config}: ${Math.round(r.rate)}/s`);
      return r;
    };
    let before = await rawCpu();
    for (const store of cpuKinds) {
      const opened = await openStore(store, 'cpu');
      let run;
      try {
        const job = await workerJob('burn', 'burn.mjs', cpuConcurrency);
        const t = await timePartitaBatch({ job, store: opened.store, threads, n: cpuN, ms: cpuMs });
        run = {
          round,
          config: `partita ${store} c=${cpuConcurrency}`,
          ...t,
          rate: (cpuN / t.totalMs) * 1000,
        };
        cpuRuns.push(run);
        log(`throughput: cpu round ${round} ${run.config}: ${Math.round(run.rate)}/s`);
      } catch (err) {
        errors.push(`cpu ${store}: ${err.stack ?? err}`);
      } finally {
        await opened.cleanup().catch(() => {});
      }
      const after = await rawCpu();
      if (run) run.ratio = run.rate / ((before.rate + after.rate) / 2);
      before = after;
    }
  }
  printTable(
    `throughput: ${cpuN.toLocaleString('en-US')} partitions of ${cpuMs} ms CPU, ${threads} threads (ideal ${ideal}/s)`,
    [
      'round',
      'config',
      'total s',
      'partitions/s',
      'efficiency',
      'main busy µs/part',
      'main CPU µs/part',
      'ratio vs adjacent raw',
    ],
    cpuRuns.map((r) => ({
      round: r.round,
      config: r.config,
      'total s': r.totalMs / 1000,
      'partitions/s': r.rate,
      efficiency: r.rate / ideal,
      'main busy µs/part': (r.mainBusyMs * 1000) / cpuN,
      'main CPU µs/part': r.mainCpuMs === undefined ? undefined : (r.mainCpuMs * 1000) / cpuN,
      'ratio vs adjacent raw': r.ratio,
    })),
  );
  const cpuSummary = [...new Set(cpuRuns.map((r) => r.config))].map((config) => {
    const rs = cpuRuns.filter((r) => r.config === config);
    const ratios = rs.map((r) => r.ratio).filter((x) => x !== undefined);
    return {
      config,
      median_per_s: round(median(rs.map((r) => r.rate))),
      efficiency: round(median(rs.map((r) => r.rate)) / ideal),
      ratio_median: ratios.length ? round(median(ratios)) : undefined,
    };
  });

  const budgets = [];
  for (const c of concurrencies) {
    const s = summary.find((x) => x.config === `partita sqlite c=${c}`);
    if (s?.ratio_median !== undefined)
      budgets.push(budget(`SQLite c=${c} / raw Piscina (no-op, end to end)`, s.ratio_median, '>=', 0.5, 0.8));
  }
  if (!kinds.includes('sqlite'))
    budgets.push({ name: 'SQLite / raw Piscina', skipped: 'sqlite not in BENCH_STORES', pass: true });
  printBudgets(budgets);
  for (const [kind, reason] of Object.entries(skipped)) log(`throughput: ${kind} skipped: ${reason}`);

  return {
    sizes: { n, cpuN, cpuMs, rounds, threads, window, concurrencies, cpuConcurrency, stores },
    summary,
    runs: runs.map((r) => ({
      round: r.round,
      config: r.config,
      submitMs: round(r.submitMs),
      processMs: round(r.processMs),
      totalMs: round(r.totalMs),
      rate: round(r.rate),
      ratio: round(r.ratio),
      mainBusyMs: round(r.mainBusyMs),
      mainCpuMs: round(r.mainCpuMs),
    })),
    cpuBound: {
      ideal,
      summary: cpuSummary,
      runs: cpuRuns.map((r) => ({
        round: r.round,
        config: r.config,
        totalMs: round(r.totalMs),
        rate: round(r.rate),
        efficiency: round(r.rate / ideal),
        ratio: round(r.ratio),
        mainCpuUsPerPartition: r.mainCpuMs === undefined ? undefined : round((r.mainCpuMs * 1000) / cpuN),
      })),
    },
    budgets,
    skipped,
    errors,
  };
}
