import { BATCH_STATUSES, type BatchStatus, FINAL_STATUSES, isFinalStatus } from '../summary.js';
import { intOption, type OptionName, type Parsed, UsageError, type Values } from './args.js';
import { batchMermaid, partitionMermaid, statechartMarkdown } from './graph.js';
import { httpSource } from './http-source.js';
import {
  listTable,
  type Out,
  PARTITION_HEADER,
  partitionRow,
  printJson,
  summaryText,
  table,
} from './output.js';
import type { Service, Source } from './source.js';
import { openStoreSource } from './store-source.js';
import { watch } from './watch.js';

/** What a command is given: its arguments, where to print, and how to reach batches. */
export interface CommandContext {
  args: string[];
  values: Values;
  out: Out;
  /** The store or service to read from (opened on first use, closed by the caller). */
  source: () => Promise<Source>;
  /** The service of `--url`, for what only a running engine can do. */
  service: () => Service;
  tty: boolean;
  columns: () => number;
}

export interface Command {
  /** `show <id>`: the synopsis, for help. */
  usage: string;
  summary: string;
  /** Options beyond the global ones. */
  options: OptionName[];
  /** Exit code. */
  run(ctx: CommandContext): Promise<number>;
}

export const DEFAULT_DB = './.partita/partita.db';
const STATUSES = BATCH_STATUSES;
const PARTITION_STATUSES = ['pending', 'succeeded', 'failed'] as const;
/** Rows of a partitions table aligned together. */
const TABLE_PAGE = 1000;

function one(ctx: CommandContext, what: string): string {
  const [arg, ...extra] = ctx.args;
  if (arg === undefined) throw new UsageError(`missing ${what}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  return arg;
}

function none(ctx: CommandContext): void {
  if (ctx.args.length > 0) throw new UsageError(`unexpected argument "${ctx.args[0]}"`);
}

/** `submit`, `cancel`, ...: through the service; a store is never written by the CLI. */
function serviceAction(action: string, summary: string): Command {
  return {
    usage: action === 'cancel' ? 'cancel <id> [--reason TEXT] --url URL' : `${action} <id> --url URL`,
    summary,
    options: action === 'cancel' ? ['reason'] : [],
    async run(ctx) {
      const id = one(ctx, 'batch id');
      const body = ctx.values.reason === undefined ? {} : { reason: ctx.values.reason };
      const s = await ctx.service().act(id, action, body);
      return print(ctx, s, () => `${s.id} ${s.status}`);
    },
  };
}

export const COMMANDS: Record<string, Command> = {
  list: {
    usage: 'list [--status S]... [--job J] [--limit N]',
    summary: 'batches, newest first',
    options: ['status', 'job', 'limit'],
    async run(ctx) {
      none(ctx);
      const status = (ctx.values.status ?? [])
        .flatMap((s) => s.split(','))
        .map((s) => s.trim().toUpperCase());
      for (const s of status)
        if (!STATUSES.includes(s as BatchStatus))
          throw new UsageError(`--status must be one of ${STATUSES.join(', ')}, not "${s}"`);
      const limit = intOption(ctx.values.limit, 'limit', 100, 1, 100_000);
      const list = await (await ctx.source()).list({
        ...(status.length ? { status: status as BatchStatus[] } : {}),
        ...(ctx.values.job ? { job: ctx.values.job } : {}),
        limit,
      });
      return print(ctx, list, () => listTable(list));
    },
  },
  show: {
    usage: 'show <id>',
    summary: 'one batch: counts, status, failures',
    options: [],
    async run(ctx) {
      const id = one(ctx, 'batch id');
      const s = await (await ctx.source()).get(id);
      return print(ctx, s, () => summaryText(s));
    },
  },
  partitions: {
    usage: 'partitions <id> [--status pending|succeeded|failed] [--limit N]',
    summary: "a batch's partitions in index order, with results (--json) and errors",
    options: ['status', 'limit'],
    async run(ctx) {
      const id = one(ctx, 'batch id');
      const statuses = ctx.values.status ?? [];
      if (statuses.length > 1) throw new UsageError('give --status once');
      const status = statuses[0];
      if (status !== undefined && !(PARTITION_STATUSES as readonly string[]).includes(status))
        throw new UsageError(`--status must be one of ${PARTITION_STATUSES.join(', ')}, not "${status}"`);
      const limit = intOption(ctx.values.limit, 'limit', Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER);
      const source = await ctx.source();
      const filter = status ? { status: status as (typeof PARTITION_STATUSES)[number] } : {};
      let count = 0;
      // Streamed, waiting for stdout to drain: a batch may have millions of partitions. A table is
      // aligned a page of rows at a time.
      let rows: string[][] = [PARTITION_HEADER];
      if (ctx.values.json) await ctx.out.write('[');
      for await (const p of source.partitions(id, filter)) {
        if (count >= limit) break;
        if (ctx.values.json) await ctx.out.write(`${count === 0 ? '\n' : ',\n'}${JSON.stringify(p)}`);
        else rows.push(partitionRow(p));
        count++;
        if (rows.length >= TABLE_PAGE) {
          await ctx.out.write(`${table(rows)}\n`);
          rows = [];
        }
      }
      if (ctx.values.json) await ctx.out.write(`${count === 0 ? '' : '\n'}]\n`);
      else if (count === 0) await ctx.out.write('no partitions\n');
      else if (rows.length > 0) await ctx.out.write(`${table(rows)}\n`);
      return 0;
    },
  },
  watch: {
    usage: 'watch <id> [--interval MS]',
    summary: 'follow a batch until it is final (a live progress bar on a terminal)',
    options: ['interval'],
    async run(ctx) {
      const id = one(ctx, 'batch id');
      const intervalMs = intOption(ctx.values.interval, 'interval', 500, 10, 3_600_000);
      await watch(await ctx.source(), id, ctx.out, {
        intervalMs,
        json: ctx.values.json === true,
        tty: ctx.tty,
        columns: ctx.columns,
      });
      return 0;
    },
  },
  recount: {
    usage: 'recount <id>',
    summary: "count a batch's stored outcomes again; exit 1 if the summary disagrees",
    options: [],
    async run(ctx) {
      const id = one(ctx, 'batch id');
      const source = await ctx.source();
      if (!source.recount)
        throw new UsageError('recount reads the store itself: give --db PATH or --pg URL, not --url');
      const summary = await source.get(id);
      const counts = await source.recount(id);
      // A running batch's stored summary may be behind its stored outcomes (its state goes at most
      // every 100 ms, always after the outcomes it counts), never ahead: that is all it can agree
      // to. A final one counts every outcome (docs/guarantees.md). The outcomes are read after the
      // summary, so the batch may have ended meanwhile: its summary then still counts no more.
      const final = isFinalStatus(summary.status);
      const matches =
        counts.total === summary.total &&
        (final
          ? counts.succeeded === summary.succeeded && counts.failed === summary.failed
          : counts.succeeded >= summary.succeeded && counts.failed >= summary.failed);
      const behind = !final && matches;
      if (ctx.values.json)
        await printJson(ctx.out, {
          id,
          ...counts,
          summary: {
            status: summary.status,
            total: summary.total,
            succeeded: summary.succeeded,
            failed: summary.failed,
          },
          matches,
        });
      else
        await ctx.out.write(
          `total ${counts.total}, succeeded ${counts.succeeded}, failed ${counts.failed}: ${
            !matches
              ? `the summary says total ${summary.total}, succeeded ${summary.succeeded}, failed ${summary.failed}`
              : behind
                ? `the batch is ${summary.status}: its stored summary (succeeded ${summary.succeeded}, failed ${summary.failed}) counts no outcome that is not stored, as it may lag them`
                : 'the summary agrees'
          }\n`,
        );
      return matches ? 0 : 1;
    },
  },
  graph: {
    usage: 'graph [--machine batch|partition]',
    summary: 'the statecharts as Mermaid (both, as Markdown, unless --machine)',
    options: ['machine'],
    async run(ctx) {
      none(ctx);
      const machine = ctx.values.machine;
      if (machine !== undefined && machine !== 'batch' && machine !== 'partition')
        throw new UsageError(`--machine must be batch or partition, not "${machine}"`);
      if (ctx.values.json) await printJson(ctx.out, { batch: batchMermaid(), partition: partitionMermaid() });
      else if (machine === 'batch') await ctx.out.write(`${batchMermaid()}\n`);
      else if (machine === 'partition') await ctx.out.write(`${partitionMermaid()}\n`);
      else await ctx.out.write(statechartMarkdown());
      return 0;
    },
  },
  submit: {
    usage:
      'submit <job> --input JSON --url URL [--id ID] [--priority N] [--after ID]... [--when succeeded|settled] [--meta K=V]...',
    summary: 'submit a batch to a running service',
    options: ['input', 'id', 'priority', 'after', 'when', 'meta'],
    async run(ctx) {
      const job = one(ctx, 'job name');
      const v = ctx.values;
      if (v.input === undefined)
        throw new UsageError('missing --input JSON (the batch input, e.g. --input \'{"n":3}\')');
      let input: unknown;
      try {
        input = JSON.parse(v.input);
      } catch (err) {
        throw new UsageError(`--input is not valid JSON: ${(err as Error).message}`);
      }
      const body: Record<string, unknown> = { job, input };
      if (v.id !== undefined) body.id = v.id;
      if (v.priority !== undefined)
        body.priority = intOption(v.priority, 'priority', 0, -1_000_000, 1_000_000);
      if (v.after?.length) body.after = v.after;
      if (v.when !== undefined) {
        if (v.when !== 'succeeded' && v.when !== 'settled')
          throw new UsageError(`--when is succeeded or settled, not "${v.when}"`);
        body.when = v.when;
      }
      if (v.meta?.length)
        body.meta = Object.fromEntries(
          v.meta.map((kv) => {
            const at = kv.indexOf('=');
            if (at <= 0) throw new UsageError(`--meta takes KEY=VALUE, not "${kv}"`);
            return [kv.slice(0, at), kv.slice(at + 1)];
          }),
        );
      const s = await ctx.service().submit(body);
      return print(ctx, s, () => `${s.id} ${s.status}`);
    },
  },
  prune: {
    usage: 'prune (--older-than AGE | --before TIME) [--status S]... [--job J] [--limit N] --url URL',
    summary: 'delete batches that ended before a time (through a running service)',
    options: ['older-than', 'before', 'status', 'job', 'limit'],
    async run(ctx) {
      none(ctx);
      const v = ctx.values;
      if ((v.before === undefined) === (v['older-than'] === undefined))
        throw new UsageError('give one of --older-than AGE (e.g. 14d, 12h) or --before TIME (ISO 8601)');
      const before = v.before ?? new Date(Date.now() - ageMs(v['older-than']!)).toISOString();
      const query = new URLSearchParams({ before });
      const status = (v.status ?? []).flatMap((s) => s.split(',')).map((s) => s.trim().toUpperCase());
      for (const s of status)
        if (!FINAL_STATUSES.includes(s as BatchStatus))
          throw new UsageError(`--status must be one of ${FINAL_STATUSES.join(', ')}, not "${s}"`);
      if (status.length > 0) query.set('status', status.join(','));
      if (v.job !== undefined) query.set('job', v.job);
      if (v.limit !== undefined) query.set('limit', String(intOption(v.limit, 'limit', 0, 1, 1_000_000_000)));
      const result = await ctx.service().prune(query);
      return print(
        ctx,
        result,
        () => `${result.deleted} ${result.deleted === 1 ? 'batch' : 'batches'} deleted`,
      );
    },
  },
  cancel: serviceAction('cancel', 'cancel a batch (through a running service)'),
  pause: serviceAction('pause', 'pause a batch (through a running service whose engine can)'),
  resume: serviceAction('resume', 'resume a paused batch (likewise)'),
  'retry-failed': serviceAction(
    'retry-failed',
    'run the failed partitions of a final batch again (likewise)',
  ),
};

/** Commands that need a running service; the others read a store (or a service, with --url). */
export const SERVICE_COMMANDS = new Set(['submit', 'cancel', 'pause', 'resume', 'retry-failed', 'prune']);

const AGE_UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `--older-than`: a whole number of minutes, hours, days or weeks (`30m`, `12h`, `14d`, `2w`). */
function ageMs(age: string): number {
  const m = /^([0-9]+)([mhdw])$/.exec(age.trim());
  const ms = m ? Number(m[1]) * AGE_UNITS[m[2]!]! : Number.NaN;
  if (!Number.isFinite(ms) || ms > 8.64e15)
    throw new UsageError(`--older-than takes a number and a unit (30m, 12h, 14d, 2w), not "${age}"`);
  return ms;
}

/** Where a command reads from, from the global options. */
export function sourceFor(parsed: Parsed): () => Promise<Source> {
  const { values } = parsed;
  if ([values.db, values.pg, values.url].filter((x) => x !== undefined).length > 1)
    throw new UsageError('give one of --db, --pg or --url');
  if (values.schema !== undefined && values.pg === undefined) throw new UsageError('--schema goes with --pg');
  if (values.url !== undefined) return async () => httpSource(values.url!);
  if (values.pg !== undefined)
    return () => openStoreSource({ pg: values.pg!, schema: values.schema ?? 'partita' });
  return () => openStoreSource({ db: values.db ?? DEFAULT_DB });
}

/** Print `value` as JSON (--json) or as the text `text()` makes of it; exit code 0. */
async function print(ctx: CommandContext, value: unknown, text: () => string): Promise<number> {
  if (ctx.values.json) await printJson(ctx.out, value);
  else await ctx.out.write(`${text()}\n`);
  return 0;
}
