// The worker module of the inspector example's `inspect-demo` job: each partition sleeps a while so
// the lanes can be watched, and some fail, so retries, backoffs and a failure show up too.
export default async function work({ ms, fail }, ctx) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  if (fail === 'always') {
    const err = new Error(`${ctx.key} cannot be processed`);
    err.code = 'E_INVALID';
    err.retryable = false; // no retry: the partition fails at once
    throw err;
  }
  if (fail === 'once' && ctx.attempt === 1) throw new Error(`${ctx.key}: transient error, retried`);
  return { key: ctx.key, attempt: ctx.attempt };
}
