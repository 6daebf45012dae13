// Bench 1, throughput: no-op worker partitions through partita (memory, SQLite, PostgreSQL stores;
// item batching auto, a fixed group size and off) against raw Piscina on the same threads, one task
// per item and running the same groups as partita, alternately, in one process run. Then 1 ms CPU
// partitions with batching auto and off: efficiency against the ideal (threads × 1,000/s).
import { budget, envInt, envList, log, median, printBudgets, printTable, round } from './lib/common.mjs';
import {
  openStore,
  parseBatching,
  timePartitaBatch,
  timeRawPiscina,
  timeRawPiscinaGroups,
  uniformGroups,
  workerJob,
} from './lib/engine.mjs';

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
  const batchings = envList('BENCH_BATCHING', ['auto', '64', 'off']).map(parseBatching);
  const cpuBatchings = envList('BENCH_CPU_BATCHING', ['auto', 'off']).map(parseBatching);
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
    concurrencies.flatMap((c) =>
      batchings.map((b) => ({
        store,
        concurrency: c,
        batching: b,
        name: `partita ${store} c=${c} ${b.label}`,
      })),
    ),
  );

  // --- no-op partitions ---------------------------------------------------------------------------
  // Every partita run sits between two raw Piscina runs of one task per item (its `ratio` is to
  // their mean), and a grouped one is followed at once by raw Piscina running exactly the groups
  // partita posted (`groupRatio`): the same number of tasks with the same items in each, so the
  // ratio to it is the orchestration overhead alone.
  const runs = [];
  const rawRun = async (round, label, w) => {
    const t = await timeRawPiscina({ file: 'noop.mjs', threads, n, window: w });
    const run = { round, config: label, kind: 'raw', ...t, rate: (n / t.totalMs) * 1000 };
    runs.push(run);
    log(`throughput: round ${round} ${label}: ${Math.round(run.rate)}/s`);
    return run;
  };
  const rawGroupsRun = async (round, cfg, groups) => {
    // partita's own groups when the counter saw them; else groups of the configured size.
    const sizes = groups?.sizes ?? uniformGroups(n, cfg.batching.size);
    const t = await timeRawPiscinaGroups({ threads, sizes, window });
    const label = `raw piscina same groups as ${cfg.store} c=${cfg.concurrency} ${cfg.batching.label}`;
    const run = {
      round,
      config: label,
      kind: 'raw-groups',
      ...t,
      groupMean: t.items / t.tasks,
      rate: (t.items / t.totalMs) * 1000,
    };
    runs.push(run);
    log(`throughput: round ${round} ${label}: ${Math.round(run.rate)}/s (${t.tasks} tasks)`);
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
        const job = await workerJob('noop', 'noop.mjs', cfg.concurrency, cfg.batching.option);
        const t = await timePartitaBatch({ job, store: opened.store, threads, n });
        if (!t.groups) log(`throughput: ${cfg.name}: partita's pool tasks were not counted`);
        run = {
          round,
          config: cfg.name,
          kind: 'partita',
          store: cfg.store,
          concurrency: cfg.concurrency,
          batching: cfg.batching.label,
          ...t,
          tasks: t.groups?.tasks,
          groupMean: t.groups ? t.groups.items / t.groups.tasks : undefined,
          rate: (n / t.totalMs) * 1000,
        };
        runs.push(run);
        log(
          `throughput: round ${round} ${cfg.name}: ${Math.round(run.rate)}/s (submit ${Math.round(t.submitMs)} ms` +
            `${run.groupMean === undefined ? '' : `, ${run.tasks} tasks, mean group ${run.groupMean.toFixed(1)}`})`,
        );
      } catch (err) {
        errors.push(`${cfg.name}: ${err.stack ?? err}`);
        log(`throughput: ${cfg.name} FAILED: ${err.stack ?? err}`);
      } finally {
        await opened.cleanup().catch(() => {});
      }
      if (run && cfg.batching.option !== false) {
        const groups = await rawGroupsRun(round, cfg, run.groups);
        run.groupRatio = run.rate / groups.rate;
      }
      if (run) delete run.groups; // the sizes list is long; the JSON line keeps tasks and the mean
      const after = await rawRun(round, `raw piscina window=${window}`, window);
      if (run) run.ratio = run.rate / ((before.rate + after.rate) / 2);
      before = after;
    }
  }

  const items = (r) => r.items ?? n;
  printTable(
    `throughput: ${n.toLocaleString('en-US')} no-op partitions, ${threads} threads (every run, in order)`,
    [
      'round',
      'config',
      'tasks',
      'mean group',
      'submit s',
      'process s',
      'total s',
      'partitions/s',
      'process-only/s',
      'main busy µs/part',
      'main CPU µs/part',
      'ratio vs adjacent raw',
      'ratio vs same groups',
    ],
    runs.map((r) => ({
      round: r.round,
      config: r.config,
      tasks: r.tasks,
      'mean group': r.groupMean,
      'submit s': r.submitMs / 1000,
      'process s': r.processMs / 1000,
      'total s': r.totalMs / 1000,
      'partitions/s': r.rate,
      'process-only/s': (items(r) / r.processMs) * 1000,
      'main busy µs/part': (r.mainBusyMs * 1000) / items(r),
      'main CPU µs/part': r.mainCpuMs === undefined ? undefined : (r.mainCpuMs * 1000) / items(r),
      'ratio vs adjacent raw': r.ratio,
      'ratio vs same groups': r.groupRatio,
    })),
  );

  const labels = [...new Set(runs.map((r) => r.config))];
  const summary = labels.map((config) => {
    const rs = runs.filter((r) => r.config === config);
    const rates = rs.map((r) => r.rate);
    const ratios = rs.map((r) => r.ratio).filter((x) => x !== undefined);
    const groupRatios = rs.map((r) => r.groupRatio).filter((x) => x !== undefined);
    const means = rs.map((r) => r.groupMean).filter((x) => x !== undefined);
    return {
      config,
      runs: rs.length,
      mean_group: means.length ? round(median(means)) : undefined,
      median_per_s: round(median(rates)),
      min_per_s: round(Math.min(...rates)),
      max_per_s: round(Math.max(...rates)),
      process_only_per_s: round(median(rs.map((r) => (items(r) / r.processMs) * 1000))),
      submit_s: round(median(rs.map((r) => r.submitMs / 1000))),
      main_us_per_partition: round(median(rs.map((r) => (r.mainBusyMs * 1000) / items(r)))),
      main_cpu_us_per_partition:
        rs[0]?.mainCpuMs === undefined
          ? undefined
          : round(median(rs.map((r) => (r.mainCpuMs * 1000) / items(r)))),
      ratio_median: ratios.length ? round(median(ratios)) : undefined,
      ratio_min: ratios.length ? round(Math.min(...ratios)) : undefined,
      ratio_max: ratios.length ? round(Math.max(...ratios)) : undefined,
      group_ratio_median: groupRatios.length ? round(median(groupRatios)) : undefined,
      group_ratio_min: groupRatios.length ? round(Math.min(...groupRatios)) : undefined,
    };
  });
  printTable(
    'throughput: summary (median over rounds; ratio = partita / mean of the raw window runs just before and after; ' +
      'group ratio = partita / raw Piscina running the same groups just after)',
    [
      'config',
      'runs',
      'mean_group',
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
      'group_ratio_median',
      'group_ratio_min',
    ],
    summary,
  );

  // --- 1 ms CPU partitions ------------------------------------------------------------------------
  const ideal = threads * (1000 / cpuMs);
  const cpuRuns = [];
  const cpuKinds = kinds.filter((k) => k !== 'postgres');
  const cpuConfigs = cpuKinds.flatMap((store) =>
    cpuBatchings.map((b) => ({
      store,
      batching: b,
      name: `partita ${store} c=${cpuConcurrency} ${b.label}`,
    })),
  );
  // BENCH_CPU_N=0 leaves the CPU-bound runs out (their budget is then reported as not measured).
  for (let round = 1; cpuN > 0 && round <= rounds; round++) {
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
    for (const cfg of round % 2 === 1 ? cpuConfigs : [...cpuConfigs].reverse()) {
      const opened = await openStore(cfg.store, 'cpu');
      let run;
      try {
        const job = await workerJob('burn', 'burn.mjs', cpuConcurrency, cfg.batching.option);
        const t = await timePartitaBatch({ job, store: opened.store, threads, n: cpuN, ms: cpuMs });
        run = {
          round,
          config: cfg.name,
          store: cfg.store,
          batching: cfg.batching.label,
          ...t,
          tasks: t.groups?.tasks,
          groupMean: t.groups ? t.groups.items / t.groups.tasks : undefined,
          rate: (cpuN / t.totalMs) * 1000,
        };
        delete run.groups;
        cpuRuns.push(run);
        log(
          `throughput: cpu round ${round} ${run.config}: ${Math.round(run.rate)}/s` +
            `${run.groupMean === undefined ? '' : ` (mean group ${run.groupMean.toFixed(2)})`}`,
        );
      } catch (err) {
        errors.push(`cpu ${cfg.name}: ${err.stack ?? err}`);
        log(`throughput: cpu ${cfg.name} FAILED: ${err.stack ?? err}`);
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
      'tasks',
      'mean group',
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
      tasks: r.tasks,
      'mean group': r.groupMean,
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
    const means = rs.map((r) => r.groupMean).filter((x) => x !== undefined);
    return {
      config,
      mean_group: means.length ? round(median(means)) : undefined,
      median_per_s: round(median(rs.map((r) => r.rate))),
      efficiency: round(median(rs.map((r) => r.rate)) / ideal),
      ratio_median: ratios.length ? round(median(ratios)) : undefined,
    };
  });
  printTable(
    `throughput: ${cpuMs} ms CPU summary (median over rounds; efficiency = partitions/s / ${ideal})`,
    ['config', 'mean_group', 'median_per_s', 'efficiency', 'ratio_median'],
    cpuSummary,
  );

  // --- budgets (docs/benchmarks.md; DESIGN.md section 12) -----------------------------------------
  const budgets = [];
  // A budget whose runs are not in this run's configuration is listed as skipped, not dropped.
  const check = (name, measured, op, limit, goal) =>
    measured === undefined
      ? {
          name,
          op,
          limit,
          ...(goal === undefined ? {} : { goal }),
          skipped: 'not measured in this run',
          pass: true,
        }
      : budget(name, measured, op, limit, goal);
  const find = (label) => summary.find((x) => x.config === label);
  for (const c of concurrencies) {
    const auto = find(`partita sqlite c=${c} auto`);
    const off = find(`partita sqlite c=${c} off`);
    budgets.push(
      check(`SQLite c=${c} batching auto / raw Piscina one task per item`, auto?.ratio_median, '>=', 2, 3),
      check(`SQLite c=${c} batching auto / raw Piscina same groups`, auto?.group_ratio_median, '>=', 0.8),
      check(`SQLite c=${c} batching off / raw Piscina one task per item`, off?.ratio_median, '>=', 0.6, 0.8),
    );
  }
  for (const store of cpuKinds) {
    const s = cpuSummary.find((x) => x.config === `partita ${store} c=${cpuConcurrency} auto`);
    budgets.push(
      check(`${cpuMs} ms CPU, ${store}, batching auto: efficiency (of ${ideal}/s)`, s?.efficiency, '>=', 0.9),
    );
  }
  printBudgets(budgets);
  for (const [kind, reason] of Object.entries(skipped)) log(`throughput: ${kind} skipped: ${reason}`);

  return {
    sizes: {
      n,
      cpuN,
      cpuMs,
      rounds,
      threads,
      window,
      concurrencies,
      cpuConcurrency,
      stores,
      batching: batchings.map((b) => b.label),
      cpuBatching: cpuBatchings.map((b) => b.label),
    },
    summary,
    runs: runs.map((r) => ({
      round: r.round,
      config: r.config,
      submitMs: round(r.submitMs),
      processMs: round(r.processMs),
      totalMs: round(r.totalMs),
      tasks: r.tasks,
      groupMean: round(r.groupMean),
      rate: round(r.rate),
      ratio: round(r.ratio),
      groupRatio: round(r.groupRatio),
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
        groupMean: round(r.groupMean),
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
