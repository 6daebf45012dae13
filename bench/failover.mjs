// Bench "failover": two timings of engine processes sharing one PostgreSQL schema (docs/scaling.md),
// each process an engine of bench/children/failover-child.mjs, every time taken with Date.now() in
// the process that saw it (one machine, one clock).
//
// 1. Claim latency. Process A has no room (maxConcurrentBatches 1, held by a batch of job `hold`,
//    which B does not define); it submits small batches (2 partitions of 5 ms), one at a time at a
//    random moment; process B (room for 4) claims each. Measured: A's submit() resolved → B's first
//    partition of it starts. Two ways B can hear of the batch, one run each:
//    - `notify`: B's claimIntervalMs is 60 s, so within the run only the NOTIFY of the new batch
//      (and a sweep 50 ms after one of B's slots frees) can wake it; submissions are spaced
//      100–200 ms apart so that the slot-free sweep is over before the next one;
//    - `backstop`: B's engine gets the store without `watch` (no NOTIFY heard), claimIntervalMs
//      BENCH_FAILOVER_CLAIM_MS (default 1,000 ms, partita's default); submissions at a random
//      moment of the interval, so the wait is uniform over it.
// 2. Takeover time. Two processes up (leaseTtlMs BENCH_FAILOVER_LEASE_MS, claimIntervalMs from
//    BENCH_FAILOVER_SWEEPS); one submits a batch of BENCH_FAILOVER_PARTITIONS partitions (inline
//    handler awaiting 20 ms, concurrency 8: ~2.5 s on one process). Whichever runs it (the
//    submitter, or the other when it claims the batch on the NOTIFY first) is A; once A has started
//    BENCH_FAILOVER_KILL_AT partitions, and then at a random moment of B's sweep period (so that the
//    kill is not in step with B's sweeps), A is SIGKILLed, and the other, B, takes the batch over.
//    Measured: kill → B's first partition of the batch, kill → final on B; the lease A left
//    (expiry read from the store right after the kill) splits the first into waiting for expiry and
//    B's sweep + recovery. B stays up as one of the next trial's two processes.
//    The ownerIds name other machines, so nothing on this one can tell that A is dead: its lease
//    must expire, as for a host on another machine.
import { fork } from 'node:child_process';
import {
  budget,
  childPath,
  envInt,
  envList,
  freshPgSchema,
  log,
  median,
  PG_URL,
  partita,
  percentile,
  printBudgets,
  printTable,
  sleep,
} from './lib/common.mjs';

export const description =
  'claim latency (submit on A → running on B) and takeover after SIGKILL (PostgreSQL)';

/** A guard against a hung run, not a timing: every wait is on a message from a child. */
const HANG_MS = 60_000;

export default async function failover() {
  const modes = envList('BENCH_FAILOVER_MODES', ['notify', 'backstop']);
  const claims = envInt('BENCH_FAILOVER_CLAIMS', 20);
  const claimMs = envInt('BENCH_FAILOVER_CLAIM_MS', 1000);
  const trials = envInt('BENCH_FAILOVER_TRIALS', 5);
  const leaseMs = envInt('BENCH_FAILOVER_LEASE_MS', 1000);
  const sweeps = envList('BENCH_FAILOVER_SWEEPS', ['200', '1000']).map(Number);
  const partitions = envInt('BENCH_FAILOVER_PARTITIONS', 1000);
  const killAt = envInt('BENCH_FAILOVER_KILL_AT', 100);
  const { postgresStore } = await partita();

  const pg = await freshPgSchema('failover');
  if (!pg.ok) {
    log(`failover: skipped (${pg.reason})`);
    return { skipped: pg.reason };
  }
  const store = postgresStore({ connectionString: PG_URL, schema: pg.schema });
  await store.open();
  const base = { FO_PG_URL: PG_URL, FO_SCHEMA: pg.schema };
  const errors = [];
  const claimRows = [];
  const takeoverRows = [];
  const trialRows = [];
  const live = new Set();
  const spawn = (name, env) => {
    const c = child(name, { ...base, ...env });
    live.add(c);
    void c.exited.then(() => live.delete(c));
    return c;
  };
  try {
    // --- 1. claim latency ----------------------------------------------------------------------
    for (const mode of modes) {
      if (mode !== 'notify' && mode !== 'backstop')
        throw new Error(`unknown BENCH_FAILOVER_MODES entry "${mode}"`);
      const a = spawn('A', {
        FO_JOBS: 'io,hold',
        FO_MAX_BATCHES: '1',
        FO_OWNER: `bench-a/${process.pid}/${mode}`,
      });
      await a.next('ready');
      a.send({ type: 'submit', job: 'hold', n: 0, id: `hold-${mode}` });
      await a.next('started', `hold-${mode}`); // A's one slot is taken: A runs nothing it submits now
      const sweepMs = mode === 'notify' ? 60_000 : claimMs;
      const b = spawn('B', {
        FO_JOBS: 'io',
        FO_MAX_BATCHES: '4',
        FO_CLAIM_MS: String(sweepMs),
        FO_NO_WATCH: mode === 'backstop' ? '1' : '',
        FO_IO_MS: '5',
        FO_OWNER: `bench-b/${process.pid}/${mode}`,
      });
      await b.next('ready');
      const latencies = [];
      const heard = [];
      for (let i = 0; i < claims; i++) {
        await sleep(mode === 'notify' ? 100 + Math.random() * 100 : Math.random() * claimMs);
        const id = `${mode}-${i}`;
        a.send({ type: 'submit', job: 'io', n: 2, id });
        const submitted = await a.next('submitted', id);
        const started = await b.next('started', id);
        latencies.push(started.at - submitted.at);
        const note = b.seen('heard', id);
        if (note) heard.push(note.at - submitted.at);
        b.send({ type: 'wait', id });
      }
      for (let i = 0; i < claims; i++) {
        const fin = await b.next('final', `${mode}-${i}`);
        if (fin.status !== 'COMPLETED' || fin.succeeded !== 2)
          errors.push(`claim ${fin.id}: ${fin.status} ${fin.succeeded}/2`);
      }
      const onA = a.messages.filter((m) => m.type === 'started' && m.batchId.startsWith(`${mode}-`));
      if (onA.length > 0)
        errors.push(`claim ${mode}: ${onA.length} batch(es) started on A, which had no room`);
      claimRows.push({
        path:
          mode === 'notify'
            ? `NOTIFY (B's sweep every ${sweepMs.toLocaleString('en-US')} ms)`
            : `backstop sweep only (no NOTIFY; claimIntervalMs ${sweepMs})`,
        batches: claims,
        median_ms: median(latencies),
        p90_ms: percentile(latencies, 90),
        max_ms: Math.max(...latencies),
        min_ms: Math.min(...latencies),
        notify_heard_median_ms: heard.length > 0 ? median(heard) : '',
        heard: `${heard.length}/${claims}`,
        latencies,
      });
      log(`failover: claim latency (${mode}): median ${median(latencies)} ms`);
      a.kill();
      b.kill();
      await Promise.all([a.exited, b.exited]);
    }

    // --- 2. takeover ---------------------------------------------------------------------------
    for (const sweepMs of sweeps) {
      const kills = [];
      const finals = [];
      let hostNo = 0;
      const host = () => {
        const name = `host${++hostNo}`;
        const owner = `other-machine-${name}/${process.pid}/${sweepMs}`;
        const env = {
          FO_JOBS: 'io',
          FO_LEASE_MS: String(leaseMs),
          FO_CLAIM_MS: String(sweepMs),
          FO_PROGRESS_AT: String(killAt),
          FO_OWNER: owner,
        };
        return Object.assign(spawn(name, env), { name, owner });
      };
      // The process that took the last batch over stays up into the next trial; one new one a trial.
      let survivor;
      for (let k = 0; k < trials; k++) {
        const id = `take-${sweepMs}-${k}`;
        const pair = [survivor ?? host(), host()];
        await Promise.all(pair.map((p) => p.next('ready')));
        // Either may run the batch: the submitter (which admits it at once) or the other (which
        // claims it on the NOTIFY first). The first to start it is "A", the one killed.
        const firsts = pair.map((p) => p.next('started', id).then((m) => ({ p, m })));
        for (const f of firsts) f.catch(() => {});
        pair[1].send({ type: 'submit', job: 'io', n: partitions, id });
        const { p: a } = await Promise.race(firsts);
        const b = pair.find((p) => p !== a);
        b.send({ type: 'wait', id });
        await a.next('progress', id);
        // At a random moment of B's sweep period: B's sweeps are not in step with A's renewals.
        await sleep(Math.random() * sweepMs);
        if (b.seen('started', id))
          errors.push(`takeover ${id}: ${b.name} started the batch while ${a.name} ran it`);
        const killedAt = Date.now();
        a.kill();
        await a.exited;
        const lease = await store.leaseOf(id);
        const leaseLeft = lease?.owner === a.owner ? lease.expiresAt - killedAt : undefined;
        if (leaseLeft === undefined) {
          // A finished (or lost) the batch before the kill: no takeover to time (more partitions).
          const row = await store.loadBatch(id);
          errors.push(`takeover ${id}: the lease was not ${a.name}'s at the kill (batch ${row?.status})`);
          survivor = b;
          continue;
        }
        const started = await b.next('started', id);
        const fin = await b.next('final', id);
        if (fin.status !== 'COMPLETED' || fin.succeeded !== partitions)
          errors.push(`takeover ${id}: ${fin.status} ${fin.succeeded}/${partitions}`);
        const c = await store.countOutcomes(id);
        if (c.succeeded !== partitions || c.failed !== 0)
          errors.push(`takeover ${id}: ${c.succeeded} outcomes stored for ${partitions} partitions`);
        kills.push(started.at - killedAt);
        finals.push(fin.at - killedAt);
        trialRows.push({
          sweep_ms: sweepMs,
          trial: k + 1,
          ran_first_on: a === pair[1] ? 'submitter' : 'other',
          lease_left_ms: leaseLeft,
          kill_to_running_ms: started.at - killedAt,
          after_expiry_ms: leaseLeft === undefined ? undefined : started.at - killedAt - leaseLeft,
          kill_to_final_ms: fin.at - killedAt,
          ran_on_b: fin.ranHere,
          redelivered: fin.redeliveredHere,
        });
        survivor = b;
      }
      survivor?.kill();
      await survivor?.exited;
      takeoverRows.push({
        lease_ms: leaseMs,
        sweep_ms: sweepMs,
        trials,
        running_median_ms: median(kills),
        running_max_ms: Math.max(...kills),
        final_median_ms: median(finals),
        final_max_ms: Math.max(...finals),
        budget_ms: leaseMs + 1000,
      });
      log(`failover: takeover (sweep ${sweepMs} ms): median ${median(kills)} ms`);
    }
  } finally {
    for (const c of live) c.kill();
    await Promise.all([...live].map((c) => c.exited));
    await store.close();
    await pg.drop();
  }

  printTable(
    `failover: claim latency, submit() resolved on A (no room) → B's first partition starts (${claims} batches of 2 partitions each)`,
    ['path', 'batches', 'median_ms', 'p90_ms', 'max_ms', 'min_ms', 'notify_heard_median_ms', 'heard'],
    claimRows,
  );
  printTable(
    `failover: takeover after SIGKILL, ${partitions} partitions of 20 ms (concurrency 8); A, the process running it, SIGKILLed at a random moment of the sweep period after it started ${killAt} (every trial)`,
    [
      'sweep_ms',
      'trial',
      'ran_first_on',
      'lease_left_ms',
      'kill_to_running_ms',
      'after_expiry_ms',
      'kill_to_final_ms',
      'ran_on_b',
      'redelivered',
    ],
    trialRows,
  );
  printTable(
    `failover: takeover summary (leaseTtlMs ${leaseMs} on both; sweep = B's claimIntervalMs)`,
    [
      'lease_ms',
      'sweep_ms',
      'trials',
      'running_median_ms',
      'running_max_ms',
      'final_median_ms',
      'final_max_ms',
      'budget_ms',
    ],
    takeoverRows,
  );
  const notify = claimRows.find((r) => r.path.startsWith('NOTIFY'));
  const budgets = [
    ...(notify
      ? [budget(`claim via NOTIFY: p90 ms (below the ${claimMs} ms sweep)`, notify.p90_ms, '<', claimMs)]
      : []),
    ...takeoverRows.map((r) =>
      budget(
        `takeover, lease ${r.lease_ms} ms, sweep ${r.sweep_ms} ms: max kill → running on B (ms)`,
        r.running_max_ms,
        '<=',
        r.budget_ms,
      ),
    ),
  ];
  printBudgets(budgets);
  return {
    claims: claimRows,
    takeovers: takeoverRows,
    trials: trialRows,
    settings: { claims, claimMs, trials, leaseMs, sweeps, partitions, killAt },
    budgets,
    errors,
  };
}

/**
 * A forked engine process: every message it sent is kept; `next(type, id)` resolves with the first
 * one of that type (and batch id), already received or still to come.
 */
function child(name, env) {
  const proc = fork(childPath('failover-child.mjs'), [], { env: { ...process.env, ...env } });
  const messages = [];
  const waiters = [];
  let killed = false;
  const matches = (m, type, id) => m.type === type && (id === undefined || m.batchId === id || m.id === id);
  proc.on('message', (m) => {
    messages.push(m);
    for (const w of [...waiters]) if (matches(m, w.type, w.id)) w.resolve(m);
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  void exited.then(({ code, signal }) => {
    for (const w of [...waiters])
      w.reject(new Error(`${name} exited (${signal ?? code}) while awaited for '${w.type}' ${w.id ?? ''}`));
  });
  return {
    messages,
    exited,
    send: (m) => proc.send(m),
    seen: (type, id) => messages.find((m) => matches(m, type, id)),
    next(type, id) {
      const had = messages.find((m) => matches(m, type, id));
      if (had) return Promise.resolve(had);
      return new Promise((resolve, reject) => {
        const w = {
          type,
          id,
          resolve: (m) => done(() => resolve(m)),
          reject: (e) => done(() => reject(e)),
        };
        const timer = setTimeout(
          () => w.reject(new Error(`${name}: no '${type}' ${id ?? ''} within ${HANG_MS} ms`)),
          HANG_MS,
        );
        function done(settle) {
          const at = waiters.indexOf(w);
          if (at < 0) return; // settled already
          clearTimeout(timer);
          waiters.splice(at, 1);
          settle();
        }
        waiters.push(w);
      });
    },
    kill() {
      if (killed) return;
      killed = true;
      proc.kill('SIGKILL');
    },
  };
}
