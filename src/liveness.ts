import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * Ids of the form `${hostname}/${pid}/${random}` name one live thing of one process: an engine
 * holding leases, a SQLite store creating batches. Another process can tell when such an owner is
 * *provably* gone, and only then take over or clean up after it:
 *
 * - this host and this process: gone when no longer registered live here (it was stopped or closed);
 * - this host, another process: gone when `process.kill(pid, 0)` says there is no such process;
 * - another host, or an id of another form: never judged (a lease then expires by time instead).
 *
 * A reused pid only delays a takeover or a cleanup; it never causes a wrong one.
 */

const REGISTRY = Symbol.for('partita.liveIds');
const holder = globalThis as { [REGISTRY]?: Set<string> };
/** On globalThis, so that two copies of this module in one process agree. */
const live: Set<string> = holder[REGISTRY] ?? new Set<string>();
holder[REGISTRY] = live;

/** A new id for this process, with the given random part (a fresh UUID by default). */
export function processScopedId(random: string = randomUUID()): string {
  return `${hostname()}/${process.pid}/${random}`;
}

/** The owner is running (started, open). */
export function markLive(id: string): void {
  live.add(id);
}

/** The owner stopped or closed: from now on it is gone. */
export function markGone(id: string): void {
  live.delete(id);
}

/** The ids registered live in this process (a worker thread of it has its own, empty registry). */
export function liveIds(): string[] {
  return [...live];
}

/**
 * Is the owner of this id provably gone (see above)? `registry`: the ids live in this process, for
 * a worker thread judging for its process (src/store/sqlite-writer.ts).
 */
export function isProvablyGone(id: string, registry: ReadonlySet<string> = live): boolean {
  const parts = id.split('/');
  if (parts.length < 3) return false;
  const pid = parts[parts.length - 2]!;
  const host = parts.slice(0, -2).join('/');
  if (host !== hostname() || !/^\d+$/.test(pid)) return false;
  if (Number(pid) === process.pid) return !registry.has(id);
  return processIsGone(Number(pid));
}

/** Is there no process `pid` on this host? (EPERM: it exists but belongs to someone else.) */
export function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
