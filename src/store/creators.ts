import { isProvablyGone, markGone, markLive, processScopedId } from '../liveness.js';

/**
 * Who is creating a batch in a SQLite file: `${hostname}/${pid}/${instance}`, a fresh instance id per
 * open() of a store. A creation whose creator is provably gone can never finish and is removed when
 * a store opens; any other is left alone, however old, because its creator may still be streaming.
 *
 * Provably gone means: this host and this process, and no store of this process holds that instance
 * id open (it was closed); or this host, another process, and `process.kill(pid, 0)` says there is
 * no such process. A creator on another host is never judged (SQLite files are not shared across
 * hosts). A reused pid only delays a cleanup, it never causes a wrong one.
 */

/** A new creator id for a store being opened, live until {@link retireCreator}. */
export function newCreator(): string {
  const id = processScopedId();
  markLive(id);
  return id;
}

/** The store that held this creator id closed: its unfinished creations are dead from now on. */
export function retireCreator(id: string): void {
  markGone(id);
}

/**
 * Is the creator of an unfinished batch provably gone? `null`: written before creators were recorded.
 * `live`: this process's live ids, when asked from a worker thread (src/store/sqlite-writer.ts).
 */
export function creatorIsGone(creator: string | null, live?: ReadonlySet<string>): boolean {
  // Schema 1 did not record creators, and a partita of schema 1 can no longer open the file.
  return creator === null || isProvablyGone(creator, live);
}
