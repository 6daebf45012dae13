// The worker module of the demo's `salary-recalc` job. It runs on a worker thread: partita's
// runner imports it once per thread and calls its default export for each partition.

/** Contracts by user: the fixture "database" of this demo. Most users have a plain monthly contract. */
function contractOf(user) {
  // emp-003 was hired on the 4th: there is no contract for the 1st to the 3rd.
  if (user === 'emp-003') return { from: '2026-11-04', monthly: 4_100, scale: 'B2' };
  // emp-017's contract lost its salary scale for one day (a data-entry error).
  if (user === 'emp-017') return { from: '2026-01-01', monthly: 5_300, scale: 'C1', gaps: ['2026-11-15'] };
  const n = Number(user.slice(4));
  return { from: '2025-01-01', monthly: 3_200 + (n % 9) * 350, scale: n % 2 ? 'A3' : 'B1' };
}

/** Fails with a code and a message that say what is wrong; `retryable: false` would skip retries. */
function fail(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

/**
 * Recalculate one user's salary for one day: pay minute by minute over the day's clocked shift, with
 * an overtime premium, then tax. The clock is sampled ROUNDS times so that a partition costs a few
 * milliseconds of CPU, like the real computation it stands for.
 */
const ROUNDS = 1200;

export default async function recalc({ user, day }, ctx) {
  const contract = contractOf(user);
  if (day < contract.from) throw fail('E_NO_CONTRACT', `${user} has no contract on ${day}`);
  if (contract.gaps?.includes(day))
    throw fail('E_NO_SCALE', `contract of ${user} has no salary scale on ${day}`);
  // A transient error (a lock timeout in the real system) on the first attempt: the retry succeeds.
  if (user === 'emp-011' && day.endsWith('-07') && ctx.attempt === 1) {
    throw fail('E_LOCK_TIMEOUT', `lock timeout writing ${ctx.idempotencyKey}`);
  }

  const perMinute = contract.monthly / (21 * 8 * 60);
  let seed = [...`${user}${day}`].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  let gross = 0;
  for (let round = 0; round < ROUNDS; round++) {
    seed = (seed * 1103515245 + 12345) >>> 0; // deterministic clock-in/clock-out noise
    const clockIn = 480 + (seed % 15);
    const clockOut = 1020 + ((seed >>> 8) % 60);
    for (let minute = 0; minute < 1440; minute++) {
      if (minute < clockIn || minute >= clockOut) continue;
      gross += (perMinute * (minute >= 1020 ? 1.5 : 1)) / ROUNDS;
    }
  }
  const tax = gross <= 100 ? gross * 0.1 : 10 + (gross - 100) * 0.32;
  return {
    gross: Math.round(gross * 100) / 100,
    net: Math.round((gross - tax) * 100) / 100,
    // A retry after a failed attempt. An attempt > 1 alone may be a re-run after a stop
    // (`redelivered`), which the demo does not count as a retry.
    retry: ctx.attempt > 1 && !ctx.redelivered,
  };
}
