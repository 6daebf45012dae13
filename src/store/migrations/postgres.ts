/**
 * Forward-only schema migrations of the PostgreSQL store. Migration `n` is `POSTGRES_MIGRATIONS[n - 1]`;
 * each runs in its own transaction, under `pg_advisory_xact_lock` and with `search_path` set to the
 * store's schema (so the SQL names no schema), and is recorded in `partita_migrations`. Never edit or
 * reorder an entry that has shipped: append a new one.
 *
 * JSON goes into `text` columns, not `jsonb`: jsonb refuses "\u0000" inside strings, reorders keys
 * and cannot hold a corrupt row for the engine to report, while text round-trips exactly what
 * JSON.stringify wrote. Timestamps stay the ISO strings the engine wrote, compared in "C" collation
 * so that sorting is byte order, as in the other stores.
 *
 * @example
 * ```ts
 * const latest = POSTGRES_MIGRATIONS.length; // the schema number this code writes
 * ```
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: batches and partitions.
  `
  CREATE TABLE batches (
    id               text PRIMARY KEY,
    -- Insertion order: breaks ties between equal created_at values.
    ord              bigint GENERATED ALWAYS AS IDENTITY,
    job              text NOT NULL,
    status           text NOT NULL,
    priority         integer NOT NULL,
    created_at       text COLLATE "C" NOT NULL,
    record           text NOT NULL,
    state            text,
    -- Mirror of state.journalSeq, so saveState's compare-and-set needs no JSON parsing.
    journal_seq      bigint NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_epoch      bigint NOT NULL DEFAULT 0,
    -- Milliseconds since the epoch on the database's clock: one clock for every host.
    lease_expires_at bigint NOT NULL DEFAULT 0
  );
  CREATE INDEX batches_created ON batches (created_at, ord);
  CREATE INDEX batches_status_created ON batches (status, created_at, ord);

  CREATE TABLE partitions (
    batch_id    text NOT NULL,
    idx         integer NOT NULL,
    key         text NOT NULL,
    payload     text,
    status      text NOT NULL DEFAULT 'pending',
    result      text,
    error       text,
    attempts    integer NOT NULL DEFAULT 0,
    duration_ms double precision,
    seq         integer,
    finished_at text,
    PRIMARY KEY (batch_id, idx),
    CONSTRAINT partitions_key_unique UNIQUE (batch_id, key)
  );
  CREATE INDEX partitions_seq ON partitions (batch_id, seq);
  `,
  // 2: a notification on every change of a batch's status, for Store.watch(). A trigger sends it in
  // the transaction of the write (delivered at COMMIT, never for a write rolled back), whoever
  // writes. The channel is 'partita_' || md5(schema): one per schema, and within the 63 bytes
  // PostgreSQL allows whatever the schema's name (src/store/pg-notify.ts derives the same).
  `
  CREATE FUNCTION notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('partita_' || md5(TG_TABLE_SCHEMA), json_build_object('batchId', NEW.id, 'status', NEW.status)::text);
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER batches_status_notify AFTER UPDATE OF status ON batches
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION notify_status();
  `,
  // 3: the outcomes of a partition's earlier runs (engine.retryFailed), a JSON array.
  `
  ALTER TABLE partitions ADD COLUMN history text;
  `,
  // 4: a notification for every new batch too (status QUEUED), so that the other engines on the
  // schema can claim it at once (src/runtime/claims.ts) instead of at their next sweep.
  `
  CREATE TRIGGER batches_insert_notify AFTER INSERT ON batches
    FOR EACH ROW EXECUTE FUNCTION notify_status();
  `,
  // 5: schedules (engine.schedule): the definition as JSON, and the latest fire handled, which only
  // moves forward (recordFire). Times are epoch milliseconds.
  `
  CREATE TABLE schedules (
    name          text COLLATE "C" PRIMARY KEY,
    definition    text NOT NULL,
    created_at    bigint NOT NULL,
    last_fire_at  bigint,
    last_batch_id text
  );
  `,
  // 6: a request for the engine that runs the batch (cancel, pause, resume from another engine),
  // notified on the same channel with `control: true` so that its owner acts at once.
  `
  ALTER TABLE batches ADD COLUMN control text;
  CREATE INDEX batches_control ON batches (lease_owner) WHERE control IS NOT NULL;
  CREATE FUNCTION notify_control() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('partita_' || md5(TG_TABLE_SCHEMA),
      json_build_object('batchId', NEW.id, 'status', NEW.status, 'control', true)::text);
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER batches_control_notify AFTER UPDATE OF control ON batches
    FOR EACH ROW WHEN (NEW.control IS NOT NULL) EXECUTE FUNCTION notify_control();
  `,
  // 7: ranges of a batch's partitions offered to every engine on the schema (`distribute`,
  // src/store/sql-ranges.ts), and the answers their holders stage, one per member. A range is
  // notified on the status channel when offered and when answered (`range` in the payload).
  `
  CREATE TABLE ranges (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id        text NOT NULL,
    job             text NOT NULL,
    -- The owner's lease epoch when it offered the range: a new owner withdraws the older ones.
    owner_epoch     bigint NOT NULL,
    offered_by      text NOT NULL,
    attempt         integer NOT NULL,
    redelivered     integer NOT NULL,
    -- The members' partition indexes, a JSON array, and how many there are.
    members         text NOT NULL,
    size            integer NOT NULL,
    holder          text,
    hold_epoch      bigint NOT NULL DEFAULT 0,
    hold_expires_at bigint NOT NULL DEFAULT 0,
    answered        integer NOT NULL DEFAULT 0
  );
  CREATE INDEX ranges_open ON ranges (job, id) WHERE answered = 0;
  CREATE INDEX ranges_batch ON ranges (batch_id, owner_epoch);
  CREATE TABLE range_answers (
    range_id bigint NOT NULL,
    member   integer NOT NULL,
    answer   text NOT NULL,
    PRIMARY KEY (range_id, member)
  );
  CREATE FUNCTION notify_range() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('partita_' || md5(TG_TABLE_SCHEMA), json_build_object(
      'range', CASE WHEN TG_OP = 'INSERT' THEN 'offered' ELSE 'answered' END,
      'batchId', NEW.batch_id, 'job', NEW.job, 'id', NEW.id)::text);
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER ranges_offer_notify AFTER INSERT ON ranges
    FOR EACH ROW EXECUTE FUNCTION notify_range();
  CREATE TRIGGER ranges_answer_notify AFTER UPDATE OF answered ON ranges
    FOR EACH ROW WHEN (NEW.answered = 1 AND OLD.answered = 0) EXECUTE FUNCTION notify_range();
  `,
  // 8: every lease taken (a new epoch: claims, takeovers, resumes; not renewals), with the owner
  // and the database's time, so that who ran a batch when can be read after the fact. The trigger
  // names the table through TG_TABLE_SCHEMA: a trigger runs with the writer's search_path.
  `
  CREATE TABLE lease_history (
    batch_id text NOT NULL,
    epoch    bigint NOT NULL,
    owner    text NOT NULL,
    taken_at bigint NOT NULL,
    PRIMARY KEY (batch_id, epoch)
  );
  CREATE FUNCTION record_lease() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    EXECUTE format('INSERT INTO %I.lease_history (batch_id, epoch, owner, taken_at) VALUES ($1, $2, $3, $4)
      ON CONFLICT DO NOTHING', TG_TABLE_SCHEMA)
      USING NEW.id, NEW.lease_epoch, NEW.lease_owner, (extract(epoch from clock_timestamp()) * 1000)::bigint;
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER batches_lease_history AFTER UPDATE OF lease_epoch ON batches
    FOR EACH ROW WHEN (NEW.lease_epoch IS DISTINCT FROM OLD.lease_epoch AND NEW.lease_owner IS NOT NULL)
    EXECUTE FUNCTION record_lease();
  `,
  // 9: the journal's index holds only partitions with an outcome (SQLite's migration 8 says why).
  // PostgreSQL uses it for \`seq > $1 AND seq <= $2\`: a strict comparison implies IS NOT NULL.
  `
  DROP INDEX partitions_seq;
  CREATE INDEX partitions_seq ON partitions (batch_id, seq) WHERE seq IS NOT NULL;
  `,
];
