// Burns `ms` milliseconds of CPU on the calling thread (a busy loop on the monotonic clock).
// The first argument is the partition payload (partita) or the task (raw Piscina): `{ ms }`.
export default function burn(payload) {
  const ms = payload?.ms ?? 1;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
  return { ok: true };
}
