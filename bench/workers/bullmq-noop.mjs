// BullMQ sandboxed processor (run on a worker thread with `useWorkerThreads: true`): no work.
export default async function noop() {
  return { ok: true };
}
