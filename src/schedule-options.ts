import { z } from 'zod';
import { SnapshotVersionError, StoreError, ValidationError } from './errors.js';
import type { AnyJobDefinition, JobWithInput } from './job.js';
import { registeredJob } from './job-ref.js';
import { badTimezone, CronTimes } from './runtime/cron.js';
import type { BatchStatus } from './summary.js';
import { parseOrThrow } from './validation.js';
import { longestParentId, unstorable } from './values.js';

/** What a fire does while the batch of the previous fire is not final (docs/guide.md, "Schedules"). */
export type ScheduleOverlap = 'skip' | 'queue' | 'allow';
/** Which fires missed while no engine ran the schedule are made up for. */
export type ScheduleCatchUp = 'none' | 'latest' | 'all';

/** What `engine.schedule` takes. */
export interface ScheduleOptions<I = unknown> {
  /** Unique per store, /^[A-Za-z0-9][A-Za-z0-9._-]*$/, at most 150 characters. */
  name: string;
  /** A cron expression (croner: 5 fields, or 6 with seconds first; `@daily` and the like). */
  cron: string;
  /** IANA time zone the expression is read in. Default `'UTC'` (the same on every host). */
  timezone?: string;
  /** The job each fire submits a batch of. */
  job: string | JobWithInput<I>;
  /**
   * The batch's input: a JSON value (stored with the schedule), or a function of the fire time
   * (kept in this process only: see "dormant" in docs/guide.md).
   */
  input?: I | ((fireTime: Date) => I);
  /** Default `'skip'`: a fire whose previous batch is still running submits nothing. */
  overlap?: ScheduleOverlap;
  /** Default `'latest'`: after downtime, only the most recent missed fire runs. */
  catchUp?: ScheduleCatchUp;
}

/** A schedule as `engine.schedule()` and `engine.schedules()` report it. */
export interface ScheduleInfo {
  name: string;
  cron: string;
  timezone: string;
  job: string;
  overlap: ScheduleOverlap;
  catchUp: ScheduleCatchUp;
  /** Where the input comes from: stored JSON, or a function given to schedule() in some process. */
  input: 'json' | 'function';
  /**
   * True when this engine cannot fire it: its input is a function that schedule() has not given in
   * this process, or its job is not one of this engine's.
   */
  dormant: boolean;
  /** When the schedule was first stored (ISO). */
  createdAt: string;
  /** The next fire time (ISO); absent when the expression has no more. */
  nextFire?: string;
  /**
   * The latest fire handled: its batch id (`${name}@${at}`) and that batch's status now, or
   * `'SKIPPED'` when the fire submitted nothing (overlap 'skip', or a refused input: logged).
   */
  lastFire?: { at: string; batchId: string; status: BatchStatus | 'SKIPPED' };
}

/** A schedule's definition as stored (version 1). The input function itself is never stored. */
export interface StoredSchedule {
  schemaVersion: 1;
  cron: string;
  timezone: string;
  job: string;
  overlap: ScheduleOverlap;
  catchUp: ScheduleCatchUp;
  input: { kind: 'json'; value?: unknown } | { kind: 'function' };
}

/** A schedule()'s options once checked: what to store, and the input function to keep here. */
export interface CheckedSchedule {
  name: string;
  definition: StoredSchedule;
  inputFn?: ((fireTime: Date) => unknown) | undefined;
}

/** The batch id of a fire: the same on every engine, so the idempotent submit makes one batch. */
export const fireId = (name: string, at: number) => `${name}@${new Date(at).toISOString()}`;

/** Longest schedule name: its batch ids (`${name}@${ISO time}`) must fit MAX_ID_LENGTH. */
export const MAX_SCHEDULE_NAME = 150;

const overlap = z.enum(['skip', 'queue', 'allow']);
const catchUp = z.enum(['none', 'latest', 'all']);

const optionsSchema = z
  .object({
    name: z
      .string()
      .max(MAX_SCHEDULE_NAME)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected /^[A-Za-z0-9][A-Za-z0-9._-]*$/'),
    cron: z.string().min(1),
    timezone: z
      .string()
      .min(1)
      .refine((tz) => badTimezone(tz) === undefined, { message: 'expected an IANA time zone' })
      .optional(),
    job: z.union([z.string(), z.object({ name: z.string() }).loose()]),
    input: z.unknown().optional(),
    overlap: overlap.optional(),
    catchUp: catchUp.optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.timezone !== undefined && badTimezone(o.timezone)) return; // reported above
    const times = cronTimes(o.cron, o.timezone ?? 'UTC');
    if (typeof times === 'string') ctx.addIssue({ code: 'custom', path: ['cron'], message: times });
    else if (times.next(Date.now()) === undefined)
      ctx.addIssue({ code: 'custom', path: ['cron'], message: 'the expression never fires' });
  });

/**
 * Check schedule()'s options: every problem is a coded error (VALIDATION, UNKNOWN_JOB) before
 * anything is stored. A JSON input must be storable and is checked against the job's input schema
 * now, rather than refused at every fire.
 */
export function checkSchedule(
  options: unknown,
  jobs: ReadonlyMap<string, AnyJobDefinition>,
): CheckedSchedule {
  const o = parseOrThrow(optionsSchema, options, 'schedule options');
  // The object given, not the parsed copy: a job definition must be the registered one itself.
  const job = registeredJob((options as { job: unknown }).job, jobs, 'schedule options');
  // Its batches' ids (fireId): with the job's triggers, they must leave room for the children's.
  const most = longestParentId(job, jobs) - fireId('', 0).length;
  if (o.name.length > most) {
    const message = `is too long for job "${job.name}", whose triggers add to its batch ids: at most ${most} characters`;
    throw new ValidationError(`Invalid schedule options: name ${message}`, [{ path: 'name', message }]);
  }
  const fn = typeof o.input === 'function' ? (o.input as (fireTime: Date) => unknown) : undefined;
  if (!fn) {
    const bad = unstorable(o.input);
    if (bad)
      throw new ValidationError(`Invalid schedule options: input cannot be stored: ${bad}`, [
        { path: 'input', message: bad },
      ]);
    if (job.input) parseOrThrow(job.input as z.ZodType, o.input, `input for job "${job.name}"`);
  }
  const definition: StoredSchedule = {
    schemaVersion: 1,
    cron: o.cron,
    timezone: o.timezone ?? 'UTC',
    job: job.name,
    overlap: o.overlap ?? 'skip',
    catchUp: o.catchUp ?? 'latest',
    input: fn ? { kind: 'function' } : { kind: 'json', value: o.input },
  };
  return { name: o.name, definition, inputFn: fn };
}

const storedV1 = z.object({
  schemaVersion: z.literal(1),
  cron: z.string(),
  timezone: z.string(),
  job: z.string(),
  overlap,
  catchUp,
  input: z.union([
    z.object({ kind: z.literal('json'), value: z.unknown().optional() }),
    z.object({ kind: z.literal('function') }),
  ]),
});

/** A stored definition, validated: a newer version is SNAPSHOT_VERSION, anything unreadable STORE. */
export function parseStoredSchedule(name: string, definition: unknown): StoredSchedule {
  const version = (definition as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof version === 'number' && version > 1)
    throw new SnapshotVersionError(version, 1, `schedule "${name}"`);
  const parsed = storedV1.safeParse(definition);
  if (!parsed.success)
    throw new StoreError(`Stored schedule "${name}" is not readable: ${parsed.error.message}`);
  return parsed.data as StoredSchedule;
}

/** The fire times of a definition, or croner's complaint about it. */
export function cronTimes(cron: string, timezone: string): CronTimes | string {
  try {
    return new CronTimes(cron, timezone);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
