import type { Logger } from 'pino';
import { MAX_TIMER_MS, type SubmitOptions } from '../engine-options.js';
import { EngineStateError, StoreError, toError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import {
  type CheckedSchedule,
  cronTimes,
  fireId,
  parseStoredSchedule,
  type ScheduleInfo,
  type StoredSchedule,
} from '../schedule-options.js';
import type { ScheduleRow, Store } from '../store/store.js';
import { type BatchStatus, isFinalStatus } from '../summary.js';
import type { Clock } from './clock.js';
import type { CronTimes } from './cron.js';

/** Most fires one catch-up makes up for (catchUp 'all'): the latest ones; older ones are dropped, logged. */
export const MAX_CATCH_UP_FIRES = 1000;
/** Longest wait before a pass that failed on the store is tried again. */
const MAX_RETRY_MS = 60_000;

export interface SchedulerDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  jobs: ReadonlyMap<string, AnyJobDefinition>;
  /** The engine's idempotent submit (a batch id that exists returns that batch). */
  submit(job: string, input: unknown, options: SubmitOptions): Promise<unknown>;
  /** A batch's status, or undefined when there is no such batch. */
  status(id: string): Promise<BatchStatus | undefined>;
  /** Told about a failed pass (besides the log), as the engine's onError. */
  error(err: Error): void;
  /**
   * Real milliseconds between two reads of the stored schedules besides the timer's: a schedule
   * another engine stored is fired here too even when this engine's timer has nothing to wait for.
   * Undefined (a test's clock, whose timers the test runs): only the timer's wakes read them.
   */
  rescanMs: number | undefined;
}

/**
 * The stored schedules are read again every this many claim sweeps (`claimIntervalMs`, default 1 s:
 * every 5 s), besides the timer's wakes.
 */
export const SCHEDULE_RESCAN_SWEEPS = 5;

/** A stored schedule as this engine last read it. */
interface Known {
  row: ScheduleRow;
  def: StoredSchedule;
  times: CronTimes;
  /**
   * Fires at or before `since` are not this engine's to make. Undefined until the schedule's
   * catch-up ran here: at start(), at schedule(), or, for a dormant one, once it can fire.
   */
  since?: number | undefined;
}

/** Thrown through a pass when stop() was called: the pass ends, nothing is recorded. */
class Stopped extends Error {}

/**
 * Cron schedules (docs/guide.md, "Schedules"). Definitions live in the store; this engine keeps a
 * copy of each, the input functions given to schedule() in this process, and ONE timer to the
 * earliest next fire of them all: no polling. Each timer wake re-reads the store (another engine may
 * have changed or removed a schedule), starts firing what is due, and arms the timer again. The
 * operations (wakes, schedule(), unschedule()) run one at a time, in call order; the fires of each
 * schedule run one after another, beside those of the others, so an `input` function that takes its
 * time holds up only its own schedule (a wake skips a schedule still firing; it arms the timer again
 * when done).
 */
export class Scheduler {
  private readonly inputs = new Map<string, (fireTime: Date) => unknown>();
  private readonly known = new Map<string, Known>();
  /** Schedules whose fires are running, by name: what those fires settle with. */
  private readonly firing = new Map<string, Promise<void>>();
  /** Schedules given again by schedule() while firing: their catch-up runs once the fire is done. */
  private readonly catchUpAfter = new Set<string>();
  /** Schedules whose last fire failed: the timer backs off (retryMs) until none is left. */
  private readonly failing = new Set<string>();
  private timer: unknown;
  private rescan: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private loaded = false;
  private stopped = false;
  private retryMs = 0;

  constructor(private readonly deps: SchedulerDeps) {}

  /**
   * Read the stored schedules, make up for the fires missed while down (catchUp), arm the timer.
   * Then re-read them every `rescanMs` as well: the timer waits only for the schedules this engine
   * knows, so one that another engine stored (and that engine stopped, or died) was never fired
   * here, however long this engine ran (an outside probe). The read does not keep the process alive.
   */
  async start(): Promise<void> {
    await this.wakeAndFire();
    if (this.stopped || this.deps.rescanMs === undefined) return;
    this.rescan = setInterval(() => {
      if (!this.stopped) void this.serial(() => this.wake());
    }, this.deps.rescanMs);
    this.rescan.unref();
  }

  /**
   * Clear the timer and wait for a pass in flight; nothing more fires. An input function still
   * running is not waited for: its fire is not recorded, and the next start makes it up (catchUp).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    clearInterval(this.rescan);
    for (const abandon of [...this.inputsRunning]) abandon();
    await this.chain;
    await Promise.all(this.firing.values());
  }

  /** The input functions running now: each call ends its fire's wait for it (stop()). */
  private readonly inputsRunning = new Set<() => void>();

  /**
   * The input function's value, or Stopped as soon as stop() is called: stop() does not wait for an
   * input that takes its time. Nothing is kept once it settles (a fire every second keeps nothing).
   */
  private inputOf(fn: (fireTime: Date) => unknown, at: number): Promise<unknown> {
    if (this.stopped) return Promise.reject(new Stopped());
    return new Promise((resolve, reject) => {
      const abandon = () => reject(new Stopped());
      this.inputsRunning.add(abandon);
      new Promise((r) => r(fn(new Date(at))))
        .then(resolve, reject)
        .finally(() => this.inputsRunning.delete(abandon));
    });
  }

  /** Store (or update) a schedule, keep its input function here, make up for missed fires, re-arm. */
  async schedule(checked: CheckedSchedule): Promise<ScheduleInfo> {
    const { name, definition, inputFn } = checked;
    const { row, fires } = await this.serial(async () => {
      await this.deps.store.saveSchedule(name, definition, this.deps.clock.now());
      if (inputFn) this.inputs.set(name, inputFn);
      else this.inputs.delete(name);
      const row = await this.deps.store.loadSchedule(name);
      if (!row) return { row, fires: [] }; // removed meanwhile
      return { row, fires: await this.run(() => this.pass(this.deps.clock.now(), name)) };
    });
    // Its catch-up ran beside the other operations; answer once it is done.
    await Promise.all(fires);
    return this.info(row ?? { name, definition, createdAt: this.deps.clock.now() });
  }

  /** Remove a schedule from the store (every engine stops firing it at its next wake). */
  unschedule(name: string): Promise<boolean> {
    return this.serial(async () => {
      this.inputs.delete(name);
      this.known.delete(name);
      const deleted = await this.deps.store.deleteSchedule(name);
      this.arm();
      return deleted;
    });
  }

  /** Every stored schedule, by name; one whose stored definition cannot be read is logged and left out. */
  async list(): Promise<ScheduleInfo[]> {
    const out: ScheduleInfo[] = [];
    for (const row of await this.deps.store.listSchedules()) {
      if (this.parse(row)) out.push(await this.info(row));
    }
    return out;
  }

  // --- passes ---------------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  /** A wake in turn with the other operations; resolves once the fires it started are done. */
  private async wakeAndFire(): Promise<void> {
    await Promise.all(await this.serial(() => this.wake()));
  }

  /** One pass over every schedule: resolves with the fires it started. */
  private wake(): Promise<Promise<void>[]> {
    return this.run(() => this.pass(this.deps.clock.now()));
  }

  /**
   * A pass, then the timer armed again; a failed pass is logged and retried with a backoff. Resolves
   * with the fires the pass started (each re-arms the timer when done).
   */
  private async run(pass: () => Promise<Promise<void>[]>): Promise<Promise<void>[]> {
    if (this.stopped) return [];
    let fires: Promise<void>[] = [];
    try {
      fires = await pass();
    } catch (err) {
      if (!(this.stopped || err instanceof Stopped)) this.failed(err);
    }
    this.arm();
    return fires;
  }

  /** Logged, told, and the timer backs off before trying again. */
  private failed(err: unknown): void {
    this.retryMs = Math.min(Math.max(1000, this.retryMs * 2), MAX_RETRY_MS);
    this.deps.log.error({ err, retryInMs: this.retryMs }, 'schedules: pass failed; retrying');
    this.deps.error(toError(err));
  }

  /**
   * Re-read the stored schedules, then start firing what is due: of every schedule, or only of
   * `caughtUp`, which catches up again from its stored last fire (schedule() was called). A schedule
   * still firing (its `input` function takes its time) is left to finish: it arms the timer again
   * when done. Resolves with the fires started, one per schedule, each settling without error.
   */
  private async pass(now: number, caughtUp?: string): Promise<Promise<void>[]> {
    await this.reload(now);
    const fires: Promise<void>[] = [];
    for (const k of this.known.values()) {
      if (caughtUp !== undefined && k.row.name !== caughtUp) continue;
      if (this.firing.has(k.row.name)) {
        // Given again while it fires: its new definition catches up once that fire is done.
        if (caughtUp !== undefined) this.catchUpAfter.add(caughtUp);
        continue;
      }
      if (caughtUp !== undefined) k.since = undefined;
      if (this.fireable(k)) fires.push(this.startFiring(k, now));
    }
    return fires;
  }

  /** Fire what is due of one schedule, beside the others. One that cannot fire does not hold them up. */
  private startFiring(k: Known, now: number): Promise<void> {
    const name = k.row.name;
    const done = this.fireDue(k, now)
      .then(
        () => {
          this.failing.delete(name);
          if (this.failing.size === 0) this.retryMs = 0;
        },
        (err: unknown) => {
          if (this.stopped || err instanceof Stopped) return;
          this.failing.add(name);
          this.failed(err);
        },
      )
      .finally(() => {
        this.firing.delete(name);
        if (this.catchUpAfter.delete(name) && !this.stopped)
          void this.serial(() => this.run(() => this.pass(this.deps.clock.now(), name)));
        this.arm();
      });
    this.firing.set(name, done);
    return done;
  }

  /** The store's schedules replace the copies; one met for the first time after start() starts now. */
  private async reload(now: number): Promise<void> {
    const rows = await this.deps.store.listSchedules();
    const names = new Set<string>();
    for (const row of rows) {
      // One still firing keeps its copy: its fires update it (the next fire re-reads the store).
      // Unless it was removed here meanwhile (unschedule, then schedule): the fire in flight ends
      // without submitting, and the new copy fires afterwards.
      if (this.firing.has(row.name) && this.known.has(row.name)) {
        names.add(row.name);
        continue;
      }
      const parsed = this.parse(row);
      if (!parsed) continue;
      names.add(row.name);
      const old = this.known.get(row.name);
      const since = old ? old.since : this.loaded ? now : undefined;
      this.known.set(row.name, { row, ...parsed, since });
    }
    for (const name of this.known.keys()) if (!names.has(name)) this.known.delete(name);
    this.loaded = true;
  }

  /**
   * Fire what is due. The first time here (catch-up) the fires missed while no engine ran it follow
   * catchUp; later, several fires due at once (a blocked event loop, a host asleep) are missed too:
   * 'all' fires each, 'latest' and 'none' only the most recent.
   */
  private async fireDue(k: Known, now: number): Promise<void> {
    const catchingUp = k.since === undefined;
    const { catchUp } = k.def;
    const max = catchUp === 'all' ? MAX_CATCH_UP_FIRES : catchingUp && catchUp === 'none' ? 0 : 1;
    const due = k.times.latest(bound(k), now, max);
    if (max === MAX_CATCH_UP_FIRES && due.length === max && k.times.latest(bound(k), due[0]!, 1).length > 0)
      this.deps.log.warn(
        { schedule: k.row.name, kept: max },
        `schedules: more than ${max} missed fires; the older ones are dropped`,
      );
    for (const t of due) if (!(await this.fire(k, t))) break;
    k.since = now;
  }

  /**
   * One fire, after re-reading the stored schedule (another engine may have fired, changed or
   * removed it). False when the schedule is gone or changed: the pass stops with it.
   */
  private async fire(k: Known, at: number): Promise<boolean> {
    if (this.stopped) throw new Stopped();
    const { store, log } = this.deps;
    const name = k.row.name;
    const row = await store.loadSchedule(name);
    const parsed = row && this.parse(row);
    if (!row || !parsed) {
      this.known.delete(name);
      return false;
    }
    const changed = JSON.stringify(parsed.def) !== JSON.stringify(k.def);
    Object.assign(k, { row, ...parsed });
    if (changed || !this.fireable(k)) return false;
    if (row.lastFireAt !== undefined && row.lastFireAt >= at) return true; // handled elsewhere
    const id = fireId(name, at);
    const fields = { schedule: name, batchId: id, fireTime: new Date(at).toISOString() };
    const prev = row.lastBatchId;
    if (k.def.overlap === 'skip' && prev !== undefined) {
      const status = await this.deps.status(prev);
      if (status !== undefined && !isFinalStatus(status)) {
        log.info({ ...fields, running: prev }, 'schedule fire skipped: the previous batch is not final');
        return this.record(k, at, undefined);
      }
    }
    const options: SubmitOptions = { id, meta: { schedule: name } };
    if (k.def.overlap === 'queue' && prev !== undefined)
      Object.assign(options, { after: [prev], when: 'settled' });
    try {
      const input =
        k.def.input.kind === 'json' ? k.def.input.value : await this.inputOf(this.inputs.get(name)!, at);
      // Removed here while its input was being made: nothing to submit.
      if (this.known.get(name) !== k) return false;
      await this.deps.submit(k.def.job, input, options);
    } catch (err) {
      // The store or the engine failing is retried; a refused input would be refused again: skipped.
      if (this.stopped) throw new Stopped();
      if (err instanceof StoreError || err instanceof EngineStateError) throw err;
      log.error({ ...fields, err }, 'schedule fire skipped: its batch could not be submitted');
      return this.record(k, at, undefined);
    }
    log.info(fields, 'schedule fired');
    return this.record(k, at, id);
  }

  private async record(k: Known, at: number, batchId: string | undefined): Promise<true> {
    await this.deps.store.recordFire(k.row.name, at, batchId);
    k.row = { ...k.row, lastFireAt: at, lastBatchId: batchId ?? k.row.lastBatchId };
    return true;
  }

  // --- the timer ------------------------------------------------------------------------------

  /** One timer to the earliest next fire of every schedule this engine can fire (chained past ~24.8 days). */
  private arm(): void {
    this.clearTimer();
    if (this.stopped) return;
    const now = this.deps.clock.now();
    let at = Number.POSITIVE_INFINITY;
    for (const k of this.known.values()) {
      if (!this.fireable(k) || this.firing.has(k.row.name)) continue;
      at = Math.min(at, k.since === undefined ? now : (k.times.next(bound(k)) ?? at));
    }
    if (this.retryMs > 0) at = Math.max(at, now + this.retryMs);
    if (at === Number.POSITIVE_INFINITY) return;
    const delay = Math.min(Math.max(0, at - now), MAX_TIMER_MS);
    // Returns the pass, so a test clock can wait for it; a timer that was replaced meanwhile is not ours to forget.
    const handle = this.deps.clock.setTimeout(() => {
      if (this.timer === handle) this.timer = undefined;
      return this.wakeAndFire();
    }, delay);
    this.timer = handle;
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.deps.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  // --- views ----------------------------------------------------------------------------------

  /** Can this engine fire it: its job is here, and its input is stored or was given here. */
  private fireable(k: { row: { name: string }; def: StoredSchedule }): boolean {
    return this.deps.jobs.has(k.def.job) && (k.def.input.kind === 'json' || this.inputs.has(k.row.name));
  }

  private parse(row: ScheduleRow): { def: StoredSchedule; times: CronTimes } | undefined {
    try {
      const def = parseStoredSchedule(row.name, row.definition);
      const times = cronTimes(def.cron, def.timezone);
      if (typeof times === 'string')
        throw new StoreError(`Stored schedule "${row.name}": ${times}`, undefined, { corrupt: true });
      return { def, times };
    } catch (err) {
      this.deps.log.error(
        { err, schedule: row.name },
        'schedules: a stored schedule cannot be read; ignored',
      );
      return undefined;
    }
  }

  private async info(row: ScheduleRow): Promise<ScheduleInfo> {
    const { def, times } = this.parse(row)!;
    const iso = (ms: number) => new Date(ms).toISOString();
    const next = times.next(this.deps.clock.now());
    const info: ScheduleInfo = {
      name: row.name,
      cron: def.cron,
      timezone: def.timezone,
      job: def.job,
      overlap: def.overlap,
      catchUp: def.catchUp,
      input: def.input.kind,
      dormant: !this.fireable({ row, def }),
      createdAt: iso(row.createdAt),
      ...(next === undefined ? {} : { nextFire: iso(next) }),
    };
    if (row.lastFireAt !== undefined) {
      const batchId = fireId(row.name, row.lastFireAt);
      const status = row.lastBatchId === batchId ? await this.deps.status(batchId) : undefined;
      info.lastFire = { at: iso(row.lastFireAt), batchId, status: status ?? 'SKIPPED' };
    }
    return info;
  }
}

/** Fires at or before this are done: the last fire handled, else the creation; and `since`. */
function bound(k: Known): number {
  return Math.max(k.row.lastFireAt ?? k.row.createdAt, k.since ?? Number.NEGATIVE_INFINITY);
}
