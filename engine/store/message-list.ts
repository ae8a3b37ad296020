// The message browser's reading of the message log (GET /api/messages): a page of summaries,
// newest first, filtered by channel, status, time and full-text search; and how a row of the
// messages table reads as a summary, which the message store's own reads share.
import type { MessageSummary, Status } from '../message.ts';
import type { SqliteDatabase } from './sqlite.ts';

export interface MessageQuery {
  channel?: string;
  status?: Status;
  /** Full-text terms; all must match. A trailing * makes a prefix term. */
  q?: string;
  from?: number;
  to?: number;
  limit?: number;
  cursor?: string;
}

const MAX_PAGE = 500;

/** Turns a user's search box text into an FTS5 query: each term quoted, so no syntax leaks through. */
export const toFtsQuery = (q: string): string | undefined => {
  const terms = q
    .split(/\s+/)
    .filter(Boolean)
    .map((term) => {
      const prefix = term.endsWith('*');
      const word = (prefix ? term.slice(0, -1) : term).replaceAll('"', '""');
      return word ? `"${word}"${prefix ? '*' : ''}` : '';
    })
    .filter(Boolean);
  return terms.length > 0 ? terms.join(' AND ') : undefined;
};

export const iso = (ms: number): string => new Date(ms).toISOString();

export interface MessageRow {
  seq: number;
  id: string;
  channel: string;
  status: Status;
  received_at: number;
  updated_at: number;
  source: string;
  parent_id: string | null;
  message_type: string | null;
  control_id: string | null;
  sender: string | null;
  charset: string;
  error: string | null;
}

export const toSummary = (row: MessageRow): MessageSummary => ({
  id: row.id,
  channel: row.channel,
  status: row.status,
  receivedAt: iso(row.received_at),
  updatedAt: iso(row.updated_at),
  source: row.source,
  parentId: row.parent_id,
  messageType: row.message_type,
  controlId: row.control_id,
  sender: row.sender,
  error: row.error,
});

export const SUMMARY_COLUMNS =
  'seq, id, channel, status, received_at, updated_at, source, parent_id, message_type, control_id, sender, charset, error';

/** A page of messages, newest first, and the cursor of the next page (null on the last). */
export const listMessages = (db: SqliteDatabase, query: MessageQuery): { items: MessageSummary[]; nextCursor: string | null } => {
  const where: string[] = [];
  const params: Array<string | number> = [];
  if (query.channel) {
    where.push('channel = ?');
    params.push(query.channel);
  }
  if (query.status) {
    where.push('status = ?');
    params.push(query.status);
  }
  if (query.from !== undefined) {
    where.push('received_at >= ?');
    params.push(query.from);
  }
  if (query.to !== undefined) {
    where.push('received_at <= ?');
    params.push(query.to);
  }
  if (query.cursor) {
    where.push('seq < ?');
    params.push(Number(query.cursor));
  }
  const fts = query.q ? toFtsQuery(query.q) : undefined;
  if (fts) {
    where.push('seq IN (SELECT rowid FROM message_search WHERE message_search MATCH ?)');
    params.push(fts);
  }
  const limit = Math.min(Math.max(query.limit ?? 50, 1), MAX_PAGE);
  const sql = `SELECT ${SUMMARY_COLUMNS} FROM messages ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY seq DESC LIMIT ?`;
  const rows = db.prepare<Array<string | number>, MessageRow>(sql).all(...params, limit + 1);
  const page = rows.slice(0, limit);
  return {
    items: page.map(toSummary),
    nextCursor: rows.length > limit ? String(page[page.length - 1].seq) : null,
  };
};
