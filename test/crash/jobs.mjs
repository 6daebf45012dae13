// The job the crash tests run, shared by the child process (built package) and the test (sources).
// Every 50th partition fails for good, so the right final state is PARTIAL with known counts.
export const TOTAL = 1500;
export const failing = (i) => i % 50 === 7;
export const EXPECTED = {
  total: TOTAL,
  failed: Array.from({ length: TOTAL }, (_, i) => i).filter(failing).length,
};

/** `batching` as the env gives it ('auto' unless CRASH_BATCHING says a group size or 'off'). */
export function batchingOf(env) {
  const v = env ?? 'auto';
  return v === 'auto' ? 'auto' : v === 'off' ? false : { maxItems: Number(v) };
}

export function crashJob(defineJob, { finalize, batching = 'auto' } = {}) {
  return defineJob({
    name: 'crash-job',
    partition: ({ n }) =>
      Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: { mode: failing(i) ? 'fail' : 'ok' } })),
    worker: new URL('../fixtures/workers/scripted.mjs', import.meta.url),
    concurrency: 48,
    batching,
    ...(finalize ? { finalize } : {}),
  });
}
