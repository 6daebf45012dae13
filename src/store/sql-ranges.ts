import { Params, type SqlDialect } from './sql-listing.js';
import { parseLoose } from './sql-rows.js';
import type * as S from './store.js';
import { FINAL_STATUS_LIST } from './store.js';
import type { Watchers } from './watchers.js';

interface ClaimedDbRow {
  id: number | string;
  batch_id: string;
  job: string;
  attempt: number;
  redelivered: number;
  members: string;
  hold_epoch: number | string;
}

/** How one SQL store runs the statements of {@link SqlRanges}. */
export interface RangeSql {
  dialect: SqlDialect;
  select<R>(sql: string, params: readonly unknown[]): Promise<R[]>;
  /** A write that returns rows (… RETURNING). */
  selectWrite<R>(sql: string, params: readonly unknown[]): Promise<R[]>;
  execute(sql: string, params: readonly unknown[]): Promise<number>;
  /** Listeners of watch(). */
  watchers: Watchers<S.RangeEvent>;
  /** Tell this store's own listeners of each range offered or answered (SQLite; PostgreSQL notifies through triggers). */
  emitsLocally: boolean;
}

/**
 * {@link S.RangeStore} in SQL that SQLite and PostgreSQL both run (docs/scaling.md, "One batch on
 * many hosts"). A range's claim is one conditional UPDATE (with `FOR UPDATE SKIP LOCKED` on
 * PostgreSQL, so that claimers pass over each other's rows instead of waiting); every write of a
 * holder names its hold (holder and epoch), so a holder whose range was withdrawn, or claimed by
 * another after its hold expired, writes nothing. No statement needs a transaction with another:
 * answers are staged before the range is marked answered, and a holder that dies in between leaves
 * a range whose next holder finds every answer staged and marks it.
 */
export class SqlRanges implements S.RangeStore {
  constructor(private readonly sql: RangeSql) {}

  private get d(): SqlDialect {
    return this.sql.dialect;
  }

  async offer(batchId: string, range: S.RangeOffer, fence: S.Fence): Promise<number | undefined> {
    const d = this.d;
    const p = new Params(d);
    const [row] = await this.sql.selectWrite<{ id: number | string }>(
      `INSERT INTO ${d.ranges} (batch_id, job, owner_epoch, offered_by, attempt, redelivered, members, size)
       SELECT ${p.add(batchId)}, ${p.add(range.job)}, ${p.add(fence.epoch)}, ${p.add(range.offeredBy)},
         ${p.add(range.attempt)}, ${p.add(range.redelivered ? 1 : 0)}, ${p.add(JSON.stringify(range.members))},
         ${p.add(range.members.length)}
       WHERE EXISTS (SELECT 1 FROM ${d.batches} WHERE id = ${p.add(batchId)}
         AND lease_owner = ${p.add(fence.owner)} AND lease_epoch = ${p.add(fence.epoch)})
       RETURNING id`,
      p.values,
    );
    if (!row) return undefined;
    const id = Number(row.id);
    if (this.sql.emitsLocally) this.sql.watchers.emit({ type: 'offered', batchId, job: range.job, id });
    return id;
  }

  async claim(
    holder: string,
    filter: S.RangeFilter,
    ttlMs: number,
    limit: number,
  ): Promise<S.ClaimedRange[]> {
    if (filter.jobs.length === 0 || limit <= 0) return [];
    const d = this.d;
    const p = new Params(d);
    const now = d.now(p);
    const hold = `${p.add(holder)}`;
    const ttl = p.add(Math.round(ttlMs));
    const jobs = p.list(filter.jobs);
    const by = filter.offeredBy === undefined ? '' : `AND r.offered_by = ${p.add(filter.offeredBy)}`;
    const rows = await this.sql.selectWrite<ClaimedDbRow>(
      `WITH now AS (SELECT ${now} AS ms)
       UPDATE ${d.ranges} SET holder = ${hold}, hold_epoch = hold_epoch + 1,
         hold_expires_at = now.ms + ${ttl}
       FROM now
       WHERE id IN (SELECT r.id FROM ${d.ranges} AS r, now
         WHERE r.answered = 0 AND r.job IN (${jobs}) ${by}
           AND (r.holder IS NULL OR r.hold_expires_at <= now.ms)
           -- Only ranges whose offer still stands: the batch unfinished, and offered under the
           -- lease it has now (an owner that died, or a final batch, reads no answer of the others).
           AND EXISTS (SELECT 1 FROM ${d.batches} AS b WHERE b.id = r.batch_id
             AND b.lease_epoch = r.owner_epoch AND b.status NOT IN (${p.list(FINAL_STATUS_LIST)}))
         ORDER BY r.id LIMIT ${p.add(limit)} ${d.skipLocked})
       RETURNING id, batch_id, job, attempt, redelivered, members, hold_epoch`,
      p.values,
    );
    const claimed = rows.map(
      (r): S.ClaimedRange => ({
        id: Number(r.id),
        holder,
        epoch: Number(r.hold_epoch),
        batchId: r.batch_id,
        job: r.job,
        attempt: Number(r.attempt),
        redelivered: Number(r.redelivered) === 1,
        members: parseLoose(r.members) as number[],
        answered: [],
      }),
    );
    // A range held before (its holder died or gave it back) may have answers staged already.
    const again = claimed.filter((c) => c.epoch > 1);
    if (again.length > 0) {
      const q = new Params(d);
      const staged = await this.sql.select<{ range_id: number | string; member: number }>(
        `SELECT range_id, member FROM ${d.rangeAnswers} WHERE range_id IN (${q.list(again.map((c) => c.id))})`,
        q.values,
      );
      const byId = new Map(again.map((c) => [c.id, c]));
      for (const s of staged) byId.get(Number(s.range_id))?.answered.push(Number(s.member));
    }
    claimed.sort((a, b) => a.id - b.id);
    return claimed;
  }

  async renew(holds: readonly S.RangeHold[], ttlMs: number): Promise<number[]> {
    if (holds.length === 0) return [];
    const d = this.d;
    const p = new Params(d);
    const expires = `${d.now(p)} + ${p.add(Math.round(ttlMs))}`;
    const rows = await this.sql.selectWrite<{ id: number | string }>(
      `UPDATE ${d.ranges} SET hold_expires_at = ${expires} WHERE ${this.held(p, holds)} RETURNING id`,
      p.values,
    );
    return rows.map((r) => Number(r.id));
  }

  async release(holds: readonly S.RangeHold[]): Promise<void> {
    if (holds.length === 0) return;
    const p = new Params(this.d);
    await this.sql.execute(
      `UPDATE ${this.d.ranges} SET hold_expires_at = 0 WHERE ${this.held(p, holds)}`,
      p.values,
    );
  }

  async answer(hold: S.RangeHold, answers: readonly S.StagedAnswer[], complete: boolean): Promise<boolean> {
    const d = this.d;
    if (answers.length > 0) {
      // Placeholders in the order they appear: SQLite's `?` are positional.
      const p = new Params(d);
      const rangeId = p.add(hold.id);
      const values = answers
        .map((a) => `(${p.add(a.member)}, ${p.add(JSON.stringify(a.answer))})`)
        .join(', ');
      const held = this.held(p, [hold]);
      const inserted = await this.sql.execute(
        `INSERT INTO ${d.rangeAnswers} (range_id, member, answer)
         SELECT CAST(${rangeId} AS bigint), CAST(v.column1 AS integer), CAST(v.column2 AS text)
         FROM (VALUES ${values}) AS v
         WHERE EXISTS (SELECT 1 FROM ${d.ranges} WHERE ${held})
         ON CONFLICT DO NOTHING`,
        p.values,
      );
      if (inserted < answers.length && !(await this.holds(hold))) return false;
    }
    if (!complete) return answers.length > 0 || this.holds(hold);
    const p = new Params(d);
    const held = this.held(p, [hold]);
    const marked = await this.sql.selectWrite<{ batch_id: string; job: string }>(
      `UPDATE ${d.ranges} SET answered = 1 WHERE ${held}
         AND size = (SELECT count(*) FROM ${d.rangeAnswers} WHERE range_id = ${p.add(hold.id)})
       RETURNING batch_id, job`,
      p.values,
    );
    const [row] = marked;
    if (row && this.sql.emitsLocally)
      this.sql.watchers.emit({ type: 'answered', batchId: row.batch_id, job: row.job, id: hold.id });
    return row !== undefined;
  }

  async answered(ids: readonly number[]): Promise<Array<{ id: number; answers: unknown[] }>> {
    if (ids.length === 0) return [];
    const d = this.d;
    const p = new Params(d);
    const rows = await this.sql.select<{ id: number | string; member: number; answer: string }>(
      `SELECT r.id, a.member, a.answer FROM ${d.ranges} AS r JOIN ${d.rangeAnswers} AS a ON a.range_id = r.id
       WHERE r.id IN (${p.list(ids)}) AND r.answered = 1 ORDER BY r.id, a.member`,
      p.values,
    );
    const out: Array<{ id: number; answers: unknown[] }> = [];
    for (const r of rows) {
      const id = Number(r.id);
      let last = out[out.length - 1];
      if (last?.id !== id) {
        last = { id, answers: [] };
        out.push(last);
      }
      last.answers[Number(r.member)] = parseLoose(r.answer);
    }
    return out;
  }

  async withdraw(
    batchId: string,
    which: { ids?: readonly number[]; belowEpoch?: number } = {},
  ): Promise<void> {
    const d = this.d;
    if (which.ids?.length === 0) return;
    const where = (p: Params) => {
      let w = `batch_id = ${p.add(batchId)}`;
      if (which.ids) w += ` AND id IN (${p.list(which.ids)})`;
      if (which.belowEpoch !== undefined) w += ` AND owner_epoch < ${p.add(which.belowEpoch)}`;
      return w;
    };
    // Answers first: a crash in between leaves a range with no answers (run again if it is still
    // offered, or withdrawn with the rest of the batch's), never answers of a range that is gone.
    const a = new Params(d);
    await this.sql.execute(
      `DELETE FROM ${d.rangeAnswers} WHERE range_id IN (SELECT id FROM ${d.ranges} WHERE ${where(a)})`,
      a.values,
    );
    const r = new Params(d);
    await this.sql.execute(`DELETE FROM ${d.ranges} WHERE ${where(r)}`, r.values);
  }

  watch(listener: (event: S.RangeEvent) => void): () => void {
    return this.sql.watchers.add(listener);
  }

  /** Does the holder still hold the range? */
  private async holds(hold: S.RangeHold): Promise<boolean> {
    const p = new Params(this.d);
    const rows = await this.sql.select<{ id: unknown }>(
      `SELECT id FROM ${this.d.ranges} WHERE ${this.held(p, [hold])}`,
      p.values,
    );
    return rows.length > 0;
  }

  /** The condition of a write that only these holds may make (their holder and epoch, the range still open). */
  private held(p: Params, holds: readonly S.RangeHold[]): string {
    const holder = p.add(holds[0]!.holder);
    const each = holds.map((h) => `(id = ${p.add(h.id)} AND hold_epoch = ${p.add(h.epoch)})`).join(' OR ');
    return `holder = ${holder} AND answered = 0 AND (${each})`;
  }
}
