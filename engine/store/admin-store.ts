import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { FerryError } from '../errors.ts';
import { Database, type SqliteDatabase } from './sqlite.ts';

// What the admin API changes and must remember across restarts, in its own small SQLite file next
// to the message log (data/admin.db): the state each channel was set to through the API, and the
// audit log of who did what. Kept apart from the message log so that retention never touches it
// and its rare writes never wait behind the log's group commits.

export type SavedChannelState = 'running' | 'stopped';

export type AuditAction = 'start' | 'stop' | 'resend' | 'skip' | 'login' | 'login-failed';

export interface AuditEntry {
  at: string;
  /** The user name; for a failed login the name that was tried; "(open mode)" without users. */
  user: string | null;
  action: AuditAction;
  /** A channel name or message id. */
  target: string | null;
  detail: string | null;
}

export interface AdminStore {
  /** Channels last set to `stopped` through the API. */
  stoppedChannels(): Set<string>;
  saveChannelState(channel: string, state: SavedChannelState, by: string | null): void;
  audit(entry: Omit<AuditEntry, 'at'>): void;
  /** Newest first. */
  auditLog(limit: number): AuditEntry[];
  close(): void;
}

const schemaSql = `
CREATE TABLE IF NOT EXISTS channel_state (
  channel    TEXT PRIMARY KEY,
  state      TEXT NOT NULL,                   -- running | stopped
  changed_at INTEGER NOT NULL,
  changed_by TEXT
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS audit (
  seq    INTEGER PRIMARY KEY,
  at     INTEGER NOT NULL,                     -- ms since the epoch
  user   TEXT,
  action TEXT NOT NULL,
  target TEXT,
  detail TEXT
);
`;

export const openAdminStore = (file: string): AdminStore => {
  mkdirSync(dirname(file), { recursive: true });
  let db: SqliteDatabase;
  try {
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    db.exec(schemaSql);
  } catch (cause) {
    throw new FerryError('STORE_FAILED', `cannot open ${file}: ${(cause as Error).message}`, { cause });
  }
  const selectStopped = db.prepare<[], { channel: string }>("SELECT channel FROM channel_state WHERE state = 'stopped'");
  const upsertState = db.prepare(`INSERT INTO channel_state (channel, state, changed_at, changed_by) VALUES (?, ?, ?, ?)
    ON CONFLICT (channel) DO UPDATE SET state = excluded.state, changed_at = excluded.changed_at, changed_by = excluded.changed_by`);
  const insertAudit = db.prepare('INSERT INTO audit (at, user, action, target, detail) VALUES (?, ?, ?, ?, ?)');
  const selectAudit = db.prepare<[number], { at: number; user: string | null; action: AuditAction; target: string | null; detail: string | null }>(
    'SELECT at, user, action, target, detail FROM audit ORDER BY seq DESC LIMIT ?',
  );
  let closed = false;

  return {
    stoppedChannels: () => new Set(selectStopped.all().map((row) => row.channel)),
    saveChannelState(channel, state, by) {
      upsertState.run(channel, state, Date.now(), by);
    },
    audit(entry) {
      insertAudit.run(Date.now(), entry.user, entry.action, entry.target, entry.detail);
    },
    auditLog: (limit) => selectAudit.all(limit).map((row) => ({ ...row, at: new Date(row.at).toISOString() })),
    close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
};
