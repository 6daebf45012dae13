/**
 * Which turn of the event loop this is, for telling work from waiting (item batching's `'auto'`):
 * an inline handler whose promise settles in the turn it started in awaited nothing but other
 * promises, so the time its call took is its work; one that settles in a later turn waited for I/O
 * or a timer, and grouping it would only queue its waits one behind the other.
 *
 * The count goes up once per turn that asked for it (one `setImmediate`, shared by every caller in
 * the turn), never in a turn that did not ask.
 */
let turn = 0;
let ticking = false;

const tick = () => {
  turn++;
  ticking = false;
};

/** The current turn's number (and make sure the next turn gets a new one). */
export function currentTurn(): number {
  if (!ticking) {
    ticking = true;
    setImmediate(tick);
  }
  return turn;
}

/** Has the event loop moved past `since` (a value of {@link currentTurn})? */
export function turnPassed(since: number): boolean {
  return turn !== since;
}
