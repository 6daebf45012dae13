import { z } from 'zod';
import type { PruneOptions, SubmitOptions } from '../engine.js';
import { NotFoundError } from '../errors.js';
import { type BatchStatus, type BatchSummary, isFinalStatus } from '../summary.js';
import { parseOrThrow } from '../validation.js';
import { readJson } from './body.js';
import type { RouteContext } from './context.js';
import { decodeListCursor, encodeListCursor } from './cursor.js';
import { HttpProblem } from './problem.js';
import { includes, invalid, limitParam, listParam } from './query.js';
import { batchPath, json } from './respond.js';
import type { OptionalOperations, Page } from './types.js';
import { listView } from './views.js';

/** The batch routes: submit, list, read, cancel, and the operations a later engine adds. */

const DEFAULT_LIST_LIMIT = 50;
const MAX_LIST_LIMIT = 1000;

// The options are checked by engine.submit itself (one definition); this only fixes the shape.
const submitBody = z
  .object({
    job: z.string().min(1),
    input: z.unknown().optional(),
    id: z.unknown().optional(),
    priority: z.unknown().optional(),
    after: z.unknown().optional(),
    when: z.unknown().optional(),
    meta: z.unknown().optional(),
  })
  .strict();

const cancelBody = z
  .object({ reason: z.string().max(1000).optional() })
  .strict()
  .optional();

/**
 * `POST /batches`: 201 with the new batch's summary, 200 with the existing one when the id was
 * taken (submitting twice with one id is safe, as with engine.submit). Which of the two is told by
 * looking the id up first and by the summary's `createdAt`: two requests racing with the same new
 * id may both be answered 201, and both describe the same single batch.
 */
export async function submit(ctx: RouteContext): Promise<Response> {
  const body = parseOrThrow(
    submitBody,
    await readJson(ctx.request, ctx.settings.maxBodyBytes),
    'request body',
  );
  const { job, input, ...rest } = body;
  const options = Object.fromEntries(
    Object.entries(rest).filter(([, v]) => v !== undefined),
  ) as SubmitOptions;
  const location = (s: BatchSummary) => ({ location: batchPath(ctx.settings.basePath, s.id) });
  if (typeof options.id === 'string') {
    const existing = await ctx.engine.get(options.id).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    if (existing) return json(200, existing, location(existing));
  }
  const startedAt = Date.now();
  const summary = await ctx.engine.submit(job, input, options);
  const created = Date.parse(summary.createdAt) >= startedAt;
  return json(created ? 201 : 200, summary, location(summary));
}

/** The deepest a listing pages: `engine.list` has no cursor, so a page reads every batch before it. */
const MAX_LISTED = 100_000;

/** `GET /batches?status=&job=&limit=&cursor=&include=output`, newest first. See cursor.ts. */
export async function list(ctx: RouteContext): Promise<Response> {
  const params = ctx.url.searchParams;
  const limit = limitParam(params, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
  const full = includes(params, 'output', ['output']);
  const status = listParam(params, 'status') as BatchStatus[];
  const job = params.get('job') ?? undefined;
  const cursor = decodeListCursor(params.get('cursor'));
  const read = (n: number) =>
    ctx.engine.list({
      ...(status.length > 0 ? { status } : {}),
      ...(job ? { job } : {}),
      limit: Math.min(MAX_LISTED, n),
    });
  // Read past the page: one more tells whether a next page exists; `limit` more leaves room to
  // find the last batch shown after newer ones pushed it down.
  let want = cursor.offset + limit + (cursor.lastId === undefined ? 1 : limit + 1);
  let rows = await read(want);
  let start = cursor.offset;
  if (cursor.lastId !== undefined) {
    let seen = rows.findIndex((s) => s.id === cursor.lastId);
    // Pushed down further than that by the batches created since (outside probe): a wider read.
    if (seen < 0 && rows.length >= want && want < MAX_LISTED) {
      want *= 4;
      rows = await read(want);
      seen = rows.findIndex((s) => s.id === cursor.lastId);
    }
    if (seen >= 0) start = seen + 1;
  }
  // The page and the one batch past it, which says whether a next page exists: the read ended
  // short of them when the last batch shown was found further down than the offset.
  if (rows.length >= want && rows.length < start + limit + 1 && want < MAX_LISTED) {
    want = start + limit + 1;
    rows = await read(want);
  }
  const items = rows.slice(start, start + limit);
  const page: Page<BatchSummary> = { items: items.map((s) => listView(s, full)) };
  const last = items.at(-1);
  if (last && rows.length > start + limit) page.nextCursor = encodeListCursor(start + limit, last.id);
  return json(200, page);
}

const PRUNE_PARAMS = new Set(['before', 'status', 'job', 'limit']);

/**
 * `DELETE /batches?before=&status=&job=&limit=`: engine.prune, 200 `{ deleted }`. `before` (required)
 * is an ISO 8601 time or milliseconds since the epoch; `status` may repeat or be comma-separated.
 * The engine checks the rest (a status that is not final is 400).
 */
export async function prune(ctx: RouteContext): Promise<Response> {
  const params = ctx.url.searchParams;
  for (const name of params.keys()) if (!PRUNE_PARAMS.has(name)) throw invalid(name, 'unknown parameter');
  const options: PruneOptions = { before: timeParam(params.get('before')) };
  const status = listParam(params, 'status') as BatchStatus[];
  if (status.length > 0) options.status = status;
  const job = params.get('job');
  if (job !== null) options.job = job;
  if (params.has('limit')) options.limit = limitParam(params, 0, 1_000_000_000);
  return json(200, await ctx.engine.prune(options));
}

/** `?before=`: an ISO 8601 date or time (`2026-11-01`, `2026-11-01T00:00:00Z`), or epoch milliseconds. */
function timeParam(raw: string | null): number {
  if (raw === null || raw === '') throw invalid('before', 'required: an ISO 8601 time or epoch milliseconds');
  const ms = /^[0-9]+$/.test(raw)
    ? Number(raw)
    : /^\d{4}-\d{2}-\d{2}/.test(raw)
      ? Date.parse(raw)
      : Number.NaN;
  if (!Number.isFinite(ms) || ms > 8.64e15)
    throw invalid('before', 'expected an ISO 8601 time (2026-11-01T00:00:00Z) or epoch milliseconds');
  return ms;
}

/**
 * `GET /batches/:id`: 200 once the batch is final; before that 202 with `Retry-After` and
 * `Location`, so a client polling it knows to come back (seed 002: a batch is never reported
 * finished before it is). The body is the summary either way.
 */
export async function read(ctx: RouteContext): Promise<Response> {
  const summary = await ctx.engine.get(ctx.id);
  if (isFinalStatus(summary.status)) return json(200, summary);
  return json(202, summary, {
    'retry-after': String(ctx.settings.retryAfterSeconds),
    location: batchPath(ctx.settings.basePath, summary.id),
  });
}

/** `POST /batches/:id/cancel` with an optional `{ reason }`: 200 with the final summary. */
export async function cancel(ctx: RouteContext): Promise<Response> {
  const body = parseOrThrow(
    cancelBody,
    await readJson(ctx.request, ctx.settings.maxBodyBytes),
    'request body',
  );
  return json(200, await elsewhereIs409(ctx, 'cancel', () => ctx.engine.cancel(ctx.id, body?.reason)));
}

/** ENGINE_STATE from a running engine means the batch runs on another engine (409); else it is not running (503). */
async function elsewhereIs409(
  ctx: RouteContext,
  what: string,
  act: () => Promise<BatchSummary>,
): Promise<BatchSummary> {
  try {
    return await act();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENGINE_STATE') {
      const summary = await ctx.engine.get(ctx.id).catch(() => undefined);
      if (summary && !isFinalStatus(summary.status)) throw notRunHere(summary, what);
    }
    throw err;
  }
}

export function notRunHere(summary: BatchSummary, what: string): HttpProblem {
  return new HttpProblem(
    409,
    'ENGINE_STATE',
    `Batch "${summary.id}" is ${summary.status} but not run by this engine; ${what} it through the engine that runs it.`,
  );
}

/** `POST /batches/:id/pause|resume|retry-failed`, routed only when the engine has the method. */
export function operation(name: keyof OptionalOperations) {
  return async (ctx: RouteContext): Promise<Response> => {
    // An empty body or an empty JSON object; anything else is refused before the engine is called.
    parseOrThrow(
      z.object({}).strict().optional(),
      await readJson(ctx.request, ctx.settings.maxBodyBytes),
      'request body',
    );
    const run = ctx.engine[name];
    if (typeof run !== 'function') throw new HttpProblem(404, 'NO_ROUTE', `This engine has no ${name}().`);
    return json(200, await elsewhereIs409(ctx, name, () => run.call(ctx.engine, ctx.id)));
  };
}
