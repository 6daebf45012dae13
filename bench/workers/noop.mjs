// A no-op task: the cheapest possible work. Used by raw Piscina and by partita's `worker` jobs.
export default function noop() {
  return { ok: true };
}
