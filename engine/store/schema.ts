// The message log's SQLite schema, and how a log written by an older Ferry is brought up to it.
// Content lives here, on disk, not in Redis: a destination down for a day leaves its backlog in this
// file while Redis holds only job ids, so a backlog costs disk, not memory.

import type { SqliteDatabase } from './sqlite.ts';

/**
 * Stamped in the file at open (migrate, below). Raise it with each change an older log needs
 * brought up to (a column added, data rewritten), and add that step to migrate.
 */
export const SCHEMA_VERSION = 2;

const schemaSql = `
CREATE TABLE IF NOT EXISTS messages (
  seq          INTEGER PRIMARY KEY,           -- arrival order; the search index's rowid
  id           TEXT NOT NULL UNIQUE,
  channel      TEXT NOT NULL,
  status       TEXT NOT NULL,
  received_at  INTEGER NOT NULL,              -- ms since the epoch
  updated_at   INTEGER NOT NULL,
  source       TEXT NOT NULL,                 -- e.g. "mllp 10.1.2.3:51234", "channel adt-archive"
  parent_id    TEXT,                          -- the upstream message of a channel hand-off
  message_type TEXT,
  control_id   TEXT,
  sender       TEXT,
  charset      TEXT NOT NULL,
  raw          BLOB NOT NULL,                 -- the bytes exactly as received
  error        TEXT,
  job          TEXT                           -- the inbound queue job it was queued under (recovery)
);
CREATE INDEX IF NOT EXISTS messages_by_channel ON messages (channel, seq);
CREATE INDEX IF NOT EXISTS messages_by_status ON messages (status, seq);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (received_at);

CREATE TABLE IF NOT EXISTS stages (
  message_id TEXT NOT NULL,
  stage      TEXT NOT NULL,                   -- "transform" or "<destination>#<output>"
  status     TEXT NOT NULL,
  content    TEXT,                            -- script log lines, a destination's response
  error      TEXT,
  attempts   INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  job        TEXT,                            -- a delivery's queue job (recovery)
  PRIMARY KEY (message_id, stage)
) WITHOUT ROWID;
-- Whether a message has a stage in a given status, found without reading all of its stages: a
-- message's status is derived again after each delivery, and one message may have many outputs.
CREATE INDEX IF NOT EXISTS stages_by_status ON stages (message_id, status);

CREATE TABLE IF NOT EXISTS outputs (
  message_id TEXT NOT NULL,
  idx        INTEGER NOT NULL,
  content    BLOB NOT NULL,                   -- bytes as the destinations send them
  meta       TEXT,                            -- JSON: where ctx.deliver sent it ({ url, method, headers })
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;

-- Duplicate suppression (a channel's dedupe): the first message of each sender + MSH-10 within
-- its window. Written in the transaction that records the message, so a message is a duplicate
-- exactly when an earlier one holds the key.
CREATE TABLE IF NOT EXISTS dedupe (
  channel    TEXT NOT NULL,
  key        TEXT NOT NULL,
  first_id   TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (channel, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_by_first ON dedupe (first_id);

-- Full-text search over received content (MRNs, names, control ids). Contentless: the text is
-- indexed, not stored twice.
CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5 (text, content = '', contentless_delete = 1);

-- Per-channel counts kept by triggers in the same transaction as the change, so the admin API
-- reads them in O(channels) however large the log grows.
CREATE TABLE IF NOT EXISTS channel_counts (
  channel TEXT NOT NULL,
  status  TEXT NOT NULL,
  n       INTEGER NOT NULL,
  PRIMARY KEY (channel, status)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS messages_counted_in AFTER INSERT ON messages BEGIN
  INSERT INTO channel_counts (channel, status, n) VALUES (new.channel, new.status, 1)
    ON CONFLICT (channel, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_counted_move AFTER UPDATE OF status ON messages
  WHEN old.status <> new.status BEGIN
  UPDATE channel_counts SET n = n - 1 WHERE channel = old.channel AND status = old.status;
  INSERT INTO channel_counts (channel, status, n) VALUES (new.channel, new.status, 1)
    ON CONFLICT (channel, status) DO UPDATE SET n = n + 1;
END;
-- Per channel and destination, the deliveries still queued: what the admin API shows as a
-- destination's queue (its jobs hold batches, so the message log counts), in O(1) per read.
CREATE TABLE IF NOT EXISTS delivery_counts (
  channel     TEXT NOT NULL,
  destination TEXT NOT NULL,
  n           INTEGER NOT NULL,
  PRIMARY KEY (channel, destination)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS stages_queued_in AFTER INSERT ON stages WHEN new.status = 'queued' BEGIN
  INSERT INTO delivery_counts (channel, destination, n)
    VALUES ((SELECT channel FROM messages WHERE id = new.message_id), substr(new.stage, 1, instr(new.stage, '#') - 1), 1)
    ON CONFLICT (channel, destination) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS stages_queued_move AFTER UPDATE OF status ON stages
  WHEN (old.status = 'queued') <> (new.status = 'queued') BEGIN
  INSERT INTO delivery_counts (channel, destination, n)
    VALUES ((SELECT channel FROM messages WHERE id = new.message_id), substr(new.stage, 1, instr(new.stage, '#') - 1),
            CASE WHEN new.status = 'queued' THEN 1 ELSE -1 END)
    ON CONFLICT (channel, destination) DO UPDATE SET n = n + excluded.n;
END;

-- Per-channel totals of messages that reached each status (every message counts once as
-- received when logged, then once for each status it enters), for the /metrics counters: unlike
-- channel_counts they never go down, so retention deletes do not look like counter resets.
CREATE TABLE IF NOT EXISTS status_totals (
  channel TEXT NOT NULL,
  status  TEXT NOT NULL,
  n       INTEGER NOT NULL,
  PRIMARY KEY (channel, status)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS messages_totaled_in AFTER INSERT ON messages BEGIN
  INSERT INTO status_totals (channel, status, n) VALUES (new.channel, 'received', 1)
    ON CONFLICT (channel, status) DO UPDATE SET n = n + 1;
  INSERT INTO status_totals (channel, status, n) SELECT new.channel, new.status, 1 WHERE new.status <> 'received'
    ON CONFLICT (channel, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_totaled_move AFTER UPDATE OF status ON messages
  WHEN old.status <> new.status BEGIN
  INSERT INTO status_totals (channel, status, n) VALUES (new.channel, new.status, 1)
    ON CONFLICT (channel, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_removed AFTER DELETE ON messages BEGIN
  UPDATE channel_counts SET n = n - 1 WHERE channel = old.channel AND status = old.status;
  UPDATE delivery_counts SET n = n - (SELECT count(*) FROM stages
      WHERE message_id = old.id AND status = 'queued' AND substr(stage, 1, instr(stage, '#') - 1) = delivery_counts.destination)
    WHERE channel = old.channel;
  DELETE FROM message_search WHERE rowid = old.seq;
  DELETE FROM stages WHERE message_id = old.id;
  DELETE FROM outputs WHERE message_id = old.id;
END;
`;

/**
 * Brings the message log up to SCHEMA_VERSION, in place: tables and indexes it lacks are created,
 * columns added, and the version is stamped in the file (SQLite's user_version; logs written before
 * there was a stamp read 0). A log stamped by a newer Ferry is refused rather than misread.
 */
export const migrate = (db: SqliteDatabase): void => {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) throw new Error(`it was written by a newer Ferry (schema version ${version}; this one knows ${SCHEMA_VERSION})`);
  db.exec(schemaSql);
  if (version === SCHEMA_VERSION) return;
  const hasColumn = (table: string, column: string): boolean => (db.pragma(`table_info(${table})`) as Array<{ name: string }>).some((c) => c.name === column);
  if (!hasColumn('outputs', 'meta')) db.exec('ALTER TABLE outputs ADD COLUMN meta TEXT');
  // 2: the queue job each message and delivery was queued under, for recovery; the counts of queued
  // deliveries, from what the log holds.
  for (const table of ['messages', 'stages']) if (!hasColumn(table, 'job')) db.exec(`ALTER TABLE ${table} ADD COLUMN job TEXT`);
  if (version < 2) {
    db.exec(`INSERT OR REPLACE INTO delivery_counts (channel, destination, n)
      SELECT m.channel, substr(s.stage, 1, instr(s.stage, '#') - 1), count(*) FROM stages AS s JOIN messages AS m ON m.id = s.message_id
      WHERE s.status = 'queued' GROUP BY 1, 2`);
  }
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
};
