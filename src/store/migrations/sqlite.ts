/**
 * Forward-only schema migrations of the SQLite store. Migration `n` is `SQLITE_MIGRATIONS[n - 1]`;
 * each runs in its own transaction and is recorded in `partita_migrations`. Never edit or reorder
 * an entry that has shipped: append a new one. They live in TypeScript (not .sql files) so they
 * ship inside dist/ with no copy step.
 *
 * @example
 * ```ts
 * const latest = SQLITE_MIGRATIONS.length; // the schema number this code writes
 * ```
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  // 1: batches and partitions.
  `
  CREATE TABLE batches (
    id               TEXT PRIMARY KEY NOT NULL,
    job              TEXT NOT NULL,
    status           TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    record           TEXT NOT NULL,
    state            TEXT,
    -- Mirror of state.journalSeq, so saveState's compare-and-set needs no JSON parsing.
    journal_seq      INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_epoch      INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    -- 1 while createBatch streams partitions in chunks: the row is invisible until it turns 0.
    creating         INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX batches_created ON batches (created_at);
  CREATE INDEX batches_status_created ON batches (status, created_at);

  CREATE TABLE partitions (
    batch_id    TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    key         TEXT NOT NULL,
    payload     TEXT,
    status      TEXT NOT NULL DEFAULT 'pending',
    result      TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    duration_ms REAL,
    seq         INTEGER,
    finished_at TEXT,
    PRIMARY KEY (batch_id, idx),
    UNIQUE (batch_id, key)
  );
  CREATE INDEX partitions_seq ON partitions (batch_id, seq);
  `,
  // 2: who is creating each invisible batch (`${hostname}/${pid}/${instance}`, src/store/creators.ts),
  // so that open() removes only creations whose creator is gone, never one another process is
  // still streaming. Schema 1 removed them all, and the partitions such a process went on writing
  // stayed behind with no batch: they are removed here, once.
  `
  ALTER TABLE batches ADD COLUMN creator TEXT;
  CREATE INDEX batches_creating ON batches (creator) WHERE creating = 1;
  DELETE FROM partitions WHERE batch_id NOT IN (SELECT id FROM batches);
  `,
  // 3: the outcomes of a partition's earlier runs (engine.retryFailed), a JSON array.
  `
  ALTER TABLE partitions ADD COLUMN history TEXT;
  `,
  // 4: schedules (engine.schedule): the definition as JSON, and the latest fire handled, which only
  // moves forward (recordFire). Times are epoch milliseconds.
  `
  CREATE TABLE schedules (
    name          TEXT PRIMARY KEY NOT NULL,
    definition    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_fire_at  INTEGER,
    last_batch_id TEXT
  );
  `,
  // 5: a request for the engine that runs the batch (cancel, pause, resume from another engine).
  `
  ALTER TABLE batches ADD COLUMN control TEXT;
  CREATE INDEX batches_control ON batches (lease_owner) WHERE control IS NOT NULL;
  `,
  // 6: ranges of a batch's partitions offered to every engine on the file (`distribute`,
  // src/store/sql-ranges.ts), and the answers their holders stage, one per member. AUTOINCREMENT:
  // an id is never used twice, so an answer meant for a withdrawn range never reaches a new one.
  `
  CREATE TABLE ranges (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id        TEXT NOT NULL,
    job             TEXT NOT NULL,
    owner_epoch     INTEGER NOT NULL,
    offered_by      TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    redelivered     INTEGER NOT NULL,
    members         TEXT NOT NULL,
    size            INTEGER NOT NULL,
    holder          TEXT,
    hold_epoch      INTEGER NOT NULL DEFAULT 0,
    hold_expires_at INTEGER NOT NULL DEFAULT 0,
    answered        INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX ranges_open ON ranges (job, id) WHERE answered = 0;
  CREATE INDEX ranges_batch ON ranges (batch_id, owner_epoch);
  CREATE TABLE range_answers (
    range_id INTEGER NOT NULL,
    member   INTEGER NOT NULL,
    answer   TEXT NOT NULL,
    PRIMARY KEY (range_id, member)
  );
  `,
  // 7: every lease taken (a new epoch: claims, takeovers, resumes; not renewals), with the owner
  // and the time in epoch milliseconds, so that who ran a batch when can be read after the fact.
  `
  CREATE TABLE lease_history (
    batch_id TEXT NOT NULL,
    epoch    INTEGER NOT NULL,
    owner    TEXT NOT NULL,
    taken_at INTEGER NOT NULL,
    PRIMARY KEY (batch_id, epoch)
  );
  CREATE TRIGGER batches_lease_history AFTER UPDATE OF lease_epoch ON batches
    WHEN NEW.lease_epoch IS NOT OLD.lease_epoch AND NEW.lease_owner IS NOT NULL
  BEGIN
    INSERT OR IGNORE INTO lease_history (batch_id, epoch, owner, taken_at)
    VALUES (NEW.id, NEW.lease_epoch, NEW.lease_owner, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
  END;
  `,
  // 8: the journal's index holds only partitions with an outcome. A pending partition has no seq, and
  // its entry (batch_id, NULL) was written at submit and moved at its outcome: two index writes per
  // partition for nothing. The journal's read (\`seq > ? AND seq <= ?\`) implies \`seq IS NOT NULL\`,
  // so SQLite uses the partial index for it as before.
  `
  DROP INDEX partitions_seq;
  CREATE INDEX partitions_seq ON partitions (batch_id, seq) WHERE seq IS NOT NULL;
  `,
];
