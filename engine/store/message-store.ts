import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createBatcher } from '../batcher.ts';
import { FerryError } from '../errors.ts';
import { decodeAs } from '../hl7/charset.ts';
import {
  TRANSFORM_STAGE,
  deriveStatus,
  statuses,
  type MessageDetail,
  type MessageSummary,
  type OutputMeta,
  type StageRecord,
  type Status,
} from '../message.ts';
import type { ChannelCounts, DeliveryInput, MessageStore, QueuedDelivery, Received, ReceivedMessage, ReceivedWork, StoredMessage, TransformInput } from './contract.ts';
import { SUMMARY_COLUMNS, iso, listMessages, toSummary, type MessageRow } from './message-list.ts';
import { migrate } from './schema.ts';
import { Database, type SqliteDatabase } from './sqlite.ts';

// The message log (its contract: store/contract.ts): every message, each stage's status, content and error, in one SQLite file
// under the data folder. Writes are group-committed (one transaction per event-loop turn); a
// write's promise resolves only after its transaction committed, which is what intake waits for
// before acknowledging.
//
// Durability: WAL with synchronous=NORMAL. A committed transaction is in the WAL file before the
// promise resolves, so it survives `kill -9` of the engine; an OS crash or power loss may lose
// the last transactions (the same window as Redis' appendfsync everysec).

export const openMessageStore = (file: string): MessageStore => {
  mkdirSync(dirname(file), { recursive: true });
  let db: SqliteDatabase;
  try {
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    migrate(db);
  } catch (cause) {
    throw new FerryError('STORE_FAILED', `cannot open the message log ${file}: ${(cause as Error).message}`, { cause });
  }

  const insertMessage = db.prepare(`INSERT INTO messages
    (id, channel, status, received_at, updated_at, source, parent_id, message_type, control_id, sender, charset, raw, error, job)
    VALUES (@id, @channel, @status, @receivedAt, @receivedAt, @source, @parentId, @messageType, @controlId, @sender, @charset, @raw, @error, @job)
    ON CONFLICT (id) DO NOTHING`);
  const selectDedupe = db.prepare<[string, string], { first_id: string; expires_at: number }>(
    'SELECT first_id, expires_at FROM dedupe WHERE channel = ? AND key = ?',
  );
  const upsertDedupe = db.prepare(`INSERT INTO dedupe (channel, key, first_id, expires_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (channel, key) DO UPDATE SET first_id = excluded.first_id, expires_at = excluded.expires_at`);
  const releaseDedupe = db.prepare('DELETE FROM dedupe WHERE first_id = ?');
  const purgeDedupe = db.prepare('DELETE FROM dedupe WHERE expires_at < ?');
  const setMessageJob = db.prepare('UPDATE messages SET job = ? WHERE id = ?');
  const setStageJob = db.prepare('UPDATE stages SET job = ? WHERE message_id = ? AND stage = ?');
  const insertSearch = db.prepare('INSERT INTO message_search (rowid, text) VALUES (?, ?)');
  const upsertStage = db.prepare(`INSERT INTO stages (message_id, stage, status, content, error, attempts, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (message_id, stage) DO UPDATE SET status = excluded.status, content = excluded.content,
      error = excluded.error, attempts = excluded.attempts, updated_at = excluded.updated_at`);
  // A replayed transform must not reset a delivery that already happened: a stage already sent is
  // left as it is (and the statement changes nothing).
  const queueStage = db.prepare(`INSERT INTO stages (message_id, stage, status, attempts, updated_at, job) VALUES (?, ?, 'queued', 0, ?, ?)
    ON CONFLICT (message_id, stage) DO UPDATE SET status = 'queued', content = NULL, error = NULL, attempts = 0,
      updated_at = excluded.updated_at, job = excluded.job WHERE stages.status <> 'sent'`);
  const upsertOutput = db.prepare(`INSERT INTO outputs (message_id, idx, content, meta) VALUES (?, ?, ?, ?)
    ON CONFLICT (message_id, idx) DO UPDATE SET content = excluded.content, meta = excluded.meta`);
  const selectOutputMeta = db.prepare<[string, number], { meta: string | null }>(
    'SELECT meta FROM outputs WHERE message_id = ? AND idx = ?',
  );
  // What a message's status is derived from, in one statement of index seeks (stages_by_status): a
  // message with a million outputs costs no more than one with one. Per status, whether any of its
  // destination stages is in it; the first error by stage name (left to itself, the planner would walk
  // the primary key in stage order, through every stage).
  const selectStatusFacts = db.prepare<[{ id: string }], { transform: Status | null; error: string | null } & Record<`has_${Status}`, number>>(
    `SELECT (SELECT status FROM stages WHERE message_id = @id AND stage = '${TRANSFORM_STAGE}') AS transform,
       ${statuses.map((s) => `EXISTS (SELECT 1 FROM stages WHERE message_id = @id AND status = '${s}' AND stage <> '${TRANSFORM_STAGE}') AS has_${s},`).join('\n       ')}
       (SELECT error FROM stages INDEXED BY stages_by_status WHERE message_id = @id AND status = 'error' ORDER BY stage LIMIT 1) AS error`,
  );
  // A message's stages, read whole when it has few (nearly all): one index range instead of the
  // eight seeks above, which only a message with many outputs needs.
  const FEW_STAGES = 32;
  const selectFewStages = db.prepare<[string], { stage: string; status: Status; error: string | null }>(
    `SELECT stage, status, error FROM stages WHERE message_id = ? LIMIT ${FEW_STAGES + 1}`,
  );
  const setStatus = db.prepare('UPDATE messages SET status = ?, error = ?, updated_at = ? WHERE id = ?');
  const selectStored = db.prepare<[string], StoredMessage & { received_at: number; control_id: string | null }>(
    'SELECT id, channel, raw, charset, status, control_id, received_at, job FROM messages WHERE id = ?',
  );
  const selectOutput = db.prepare<[string, number], { content: Buffer }>(
    'SELECT content FROM outputs WHERE message_id = ? AND idx = ?',
  );
  const selectStage = db.prepare<[string, string], { status: Status }>(
    'SELECT status FROM stages WHERE message_id = ? AND stage = ?',
  );
  const selectDetail = db.prepare<[string], MessageRow & { raw: Buffer }>(
    `SELECT ${SUMMARY_COLUMNS}, raw FROM messages WHERE id = ?`,
  );
  const selectOutputs = db.prepare<[string], { content: Buffer }>(
    'SELECT content FROM outputs WHERE message_id = ? ORDER BY idx',
  );
  const selectStages = db.prepare<[string], { stage: string; status: Status; content: string | null; error: string | null; attempts: number; updated_at: number }>(
    'SELECT stage, status, content, error, attempts, updated_at FROM stages WHERE message_id = ? ORDER BY updated_at, stage',
  );
  const selectSummary = db.prepare<[string], MessageRow>(`SELECT ${SUMMARY_COLUMNS} FROM messages WHERE id = ?`);
  const selectTotals = db.prepare<[], { channel: string; status: Status; n: number }>(
    'SELECT channel, status, n FROM status_totals',
  );
  const selectCounts = db.prepare<[], { channel: string; status: Status; n: number }>(
    'SELECT channel, status, n FROM channel_counts',
  );
  const selectReceivedCount = db.prepare<[string], { n: number }>("SELECT n FROM channel_counts WHERE channel = ? AND status = 'received'");
  const selectDeliveryCounts = db.prepare<[string], { destination: string; n: number }>('SELECT destination, n FROM delivery_counts WHERE channel = ?');
  const selectUnfinished = db.prepare<[string], { n: number | null }>(
    "SELECT sum(n) AS n FROM channel_counts WHERE channel = ? AND status IN ('received', 'transformed', 'queued')",
  );
  const selectReceived = db.prepare<[string, number, number], ReceivedWork>(
    "SELECT seq, id, job FROM messages WHERE status = 'received' AND channel = ? AND seq > ? ORDER BY seq LIMIT ?",
  );
  // Batch reads: one statement for a whole job's worth of ids, in the job's order (json_each's key).
  const selectTransformInputs = db.prepare<[string], { id: string; channel: string; raw: Buffer; charset: string; status: Status; control_id: string | null; received_at: number; job: string | null; transform: Status | null }>(
    `SELECT m.id, m.channel, m.raw, m.charset, m.status, m.control_id, m.received_at, m.job, s.status AS transform
       FROM json_each(?) AS j
       JOIN messages AS m ON m.id = j.value
       LEFT JOIN stages AS s ON s.message_id = m.id AND s.stage = '${TRANSFORM_STAGE}'
     ORDER BY j.key`,
  );
  const selectDeliveryInputs = db.prepare<[string, string], { id: string; output: number; content: Buffer; meta: string | null; status: Status | null; control_id: string | null; charset: string; received_at: number }>(
    `SELECT m.id, o.idx AS output, o.content, o.meta, s.status, m.control_id, m.charset, m.received_at
       FROM json_each(?) AS j
       JOIN messages AS m ON m.id = j.value ->> 0
       JOIN outputs AS o ON o.message_id = m.id AND o.idx = j.value ->> 1
       LEFT JOIN stages AS s ON s.message_id = m.id AND s.stage = ? || o.idx
     ORDER BY j.key`,
  );
  // Both walk outputs in index order and look each one's stage up by key (the stage name is
  // `<destination>#<output>`), so a page costs `limit` steps wherever it starts in a message.
  const selectQueuedOutputs = db.prepare<{ id: string; prefix: string; after: number; limit: number }, { output: number; job: string | null }>(
    `SELECT o.idx AS output, s.job FROM outputs AS o
       JOIN stages AS s ON s.message_id = o.message_id AND s.stage = @prefix || o.idx
     WHERE o.message_id = @id AND o.idx > @after AND s.status = 'queued'
     ORDER BY o.idx LIMIT @limit`,
  );
  const selectQueuedDeliveries = db.prepare<{ channel: string; prefix: string; afterSeq: number; limit: number }, QueuedDelivery>(
    `SELECT m.seq, m.id, o.idx AS output, s.job FROM messages AS m
       JOIN outputs AS o ON o.message_id = m.id
       JOIN stages AS s ON s.message_id = o.message_id AND s.stage = @prefix || o.idx
     WHERE m.status = 'queued' AND m.channel = @channel AND m.seq > @afterSeq AND s.status = 'queued'
     ORDER BY m.seq, o.idx LIMIT @limit`,
  );
  const purgeBatch = db.prepare(
    `DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE received_at < ?
       AND status IN ('sent', 'filtered', 'error') LIMIT 1000)`,
  );

  /**
   * Re-derives a message's overall status from its stages, after a stage changed: from the statuses
   * its destination stages are in, not by reading every stage.
   */
  const refreshStatus = (id: string, now: number): void => {
    const stages = selectFewStages.all(id);
    if (stages.length <= FEW_STAGES) {
      let transform: Status | undefined;
      const found = new Set<Status>();
      let error: { stage: string; error: string | null } | undefined;
      for (const row of stages) {
        if (row.stage === TRANSFORM_STAGE) transform = row.status;
        else found.add(row.status);
        if (row.status === 'error' && (!error || row.stage < error.stage)) error = row;
      }
      setStatus.run(deriveStatus(transform, [...found]), error?.error ?? null, now, id);
      return;
    }
    const facts = selectStatusFacts.get({ id })!;
    const status = deriveStatus(facts.transform ?? undefined, statuses.filter((s) => facts[`has_${s}`] === 1));
    setStatus.run(status, facts.error, now, id);
  };

  // Each write is a closure run inside the batch's transaction; a failing closure is retried
  // alone so one bad write cannot fail its neighbours' commits.
  type Write = () => unknown;
  const writes = createBatcher<Write, unknown>((batch) => {
    try {
      return db.transaction(() => batch.map((write) => write()))();
    } catch {
      return batch.map((write) => {
        try {
          return db.transaction(write)();
        } catch (cause) {
          return new FerryError('STORE_FAILED', `message log write failed: ${(cause as Error).message}`, { cause });
        }
      });
    }
  });

  let closed = false;
  const commitListeners = new Set<(id: string) => void>();
  /** Runs `fn`, a change to message `id`, in the next batch; once it has committed, tells the listeners (none for bookkeeping the admin does not show: `id` undefined). */
  const write = async (id: string | undefined, fn: Write): Promise<unknown> => {
    if (closed) throw new FerryError('ENGINE_SHUTTING_DOWN', 'the message log is closed');
    const result = await writes.add(fn);
    if (id !== undefined) for (const listener of commitListeners) listener(id);
    return result;
  };

  const insert = (message: ReceivedMessage, status: Status, error: string | null): boolean => {
    const result = insertMessage.run({
      id: message.id,
      channel: message.channel,
      status,
      receivedAt: message.receivedAt ?? Date.now(),
      source: message.source,
      parentId: message.parentId ?? null,
      messageType: message.messageType ?? null,
      controlId: message.controlId ?? null,
      sender: message.sender ?? null,
      charset: message.charset,
      raw: message.raw,
      error,
      job: message.job ?? null,
    });
    if (result.changes === 0) return false;
    insertSearch.run(result.lastInsertRowid, message.text);
    return true;
  };

  /** The first message holding the dedupe key, when one within its window does; else `message` takes it. */
  const claimDedupe = (message: ReceivedMessage, now: number): string | undefined => {
    const { dedupe } = message;
    if (!dedupe) return undefined;
    const held = selectDedupe.get(message.channel, dedupe.key);
    if (held && held.expires_at > now && held.first_id !== message.id) return held.first_id;
    upsertDedupe.run(message.channel, dedupe.key, message.id, now + dedupe.windowMs);
    return undefined;
  };

  return {
    async receive(message) {
      return (await write(message.id, () => {
        if (!insert(message, 'received', null)) return { fresh: false };
        const now = Date.now();
        const first = claimDedupe(message, now);
        if (first === undefined) return { fresh: true };
        setStatus.run('filtered', `MESSAGE_DUPLICATE: duplicate of ${first} ${message.dedupe!.note}`, now, message.id);
        return { fresh: true, duplicateOf: first };
      })) as Received;
    },

    async reject(message, error) {
      await write(message.id, () => {
        insert(message, 'error', error);
      });
    },

    async recordTransform(id, record) {
      await write(id, () => {
        const now = Date.now();
        const error = record.status === 'error' ? record.error : null;
        upsertStage.run(id, TRANSFORM_STAGE, record.status, record.logs || null, error, 1, now);
        let kept = false;
        if (record.status === 'transformed') {
          record.outputs.forEach((content, index) => {
            const meta = record.meta?.[index];
            upsertOutput.run(id, index, content, meta ? JSON.stringify(meta) : null);
            for (const destination of record.destinations) {
              if (queueStage.run(id, `${destination}#${index}`, now, record.jobs?.[destination] ?? null).changes === 0) kept = true;
            }
          });
        }
        // A first transform decides the status by itself; a replay that kept sent deliveries reads them.
        if (kept) return refreshStatus(id, now);
        const queued = record.status === 'transformed' && record.outputs.length > 0 && record.destinations.length > 0;
        setStatus.run(queued ? 'queued' : record.status, error, now, id);
      });
    },

    async recordDelivery(id, stage, record) {
      await write(id, () => {
        const now = Date.now();
        upsertStage.run(id, stage, record.status, record.response ?? null, record.error ?? null, record.attempts, now);
        refreshStatus(id, now);
      });
    },

    async recordError(id, error) {
      await write(id, () => {
        setStatus.run('error', error, Date.now(), id);
        releaseDedupe.run(id);
      });
    },

    async assignJob(job, work, destination) {
      await write(undefined, () => {
        for (const { id, output } of work) {
          if (destination === undefined) setMessageJob.run(job, id);
          else setStageJob.run(job, id, `${destination}#${output}`);
        }
      });
    },

    async recordDuplicate(id, reason) {
      await write(id, () => {
        setStatus.run('filtered', reason, Date.now(), id);
      });
    },

    queueDepths(channel) {
      return {
        inbound: selectReceivedCount.get(channel)?.n ?? 0,
        destinations: Object.fromEntries(selectDeliveryCounts.all(channel).map(({ destination, n }) => [destination, n])),
      };
    },

    unfinished(channel) {
      return selectUnfinished.get(channel)?.n ?? 0;
    },

    receivedSince(channel, afterSeq, limit) {
      return selectReceived.all(channel, afterSeq, limit);
    },

    queuedDeliveries(channel, destination, after, limit) {
      const prefix = `${destination}#`;
      // The rest of the message the cursor is in, then the messages after it.
      const rest = after
        ? selectQueuedOutputs.all({ id: after.id, prefix, after: after.output, limit }).map(({ output, job }) => ({ seq: after.seq, id: after.id, output, job }))
        : [];
      if (rest.length === limit) return rest;
      return [...rest, ...selectQueuedDeliveries.all({ channel, prefix, afterSeq: after?.seq ?? 0, limit: limit - rest.length })];
    },

    queuedOutputs(id, destination, afterOutput, limit) {
      return selectQueuedOutputs.all({ id, prefix: `${destination}#`, after: afterOutput, limit });
    },

    transformInputs(ids) {
      return selectTransformInputs.all(JSON.stringify(ids)).map((row) => ({
        id: row.id,
        channel: row.channel,
        raw: row.raw,
        charset: row.charset,
        status: row.status,
        controlId: row.control_id,
        receivedAt: row.received_at,
        job: row.job,
        transform: row.transform ?? undefined,
      }));
    },

    deliveryInputs(destination, work) {
      const pairs = work.map(({ id, output }) => [id, output]);
      return selectDeliveryInputs.all(JSON.stringify(pairs), `${destination}#`).map((row) => ({
        id: row.id,
        output: row.output,
        content: row.content,
        meta: row.meta ? (JSON.parse(row.meta) as OutputMeta) : undefined,
        status: row.status ?? undefined,
        controlId: row.control_id,
        charset: row.charset,
        receivedAt: row.received_at,
      }));
    },

    load(id) {
      const row = selectStored.get(id);
      if (!row) return undefined;
      return {
        id: row.id,
        channel: row.channel,
        raw: row.raw,
        charset: row.charset,
        status: row.status,
        controlId: row.control_id,
        receivedAt: row.received_at,
        job: row.job,
      };
    },

    output(id, index) {
      return selectOutput.get(id, index)?.content;
    },

    outputMeta(id, index) {
      const meta = selectOutputMeta.get(id, index)?.meta;
      return meta ? (JSON.parse(meta) as OutputMeta) : undefined;
    },

    stageStatus(id, stage) {
      return selectStage.get(id, stage)?.status;
    },

    get(id) {
      const row = selectDetail.get(id);
      if (!row) return undefined;
      const stages: StageRecord[] = selectStages.all(id).map((s) => ({
        stage: s.stage,
        status: s.status,
        content: s.content,
        error: s.error,
        attempts: s.attempts,
        updatedAt: iso(s.updated_at),
      }));
      return {
        ...toSummary(row),
        charset: row.charset,
        text: decodeAs(row.raw, row.charset),
        raw: row.raw.toString('base64'),
        outputs: selectOutputs.all(id).map((o) => decodeAs(o.content, row.charset)),
        stages,
      };
    },

    summary(id) {
      const row = selectSummary.get(id);
      return row ? toSummary(row) : undefined;
    },

    list: (query) => listMessages(db, query),

    counts() {
      const result = new Map<string, ChannelCounts>();
      for (const row of selectCounts.all()) {
        let counts = result.get(row.channel);
        if (!counts) {
          counts = { total: 0, ...Object.fromEntries(statuses.map((s) => [s, 0])) } as ChannelCounts;
          result.set(row.channel, counts);
        }
        counts[row.status] = row.n;
        counts.total += row.n;
      }
      return result;
    },

    totals() {
      const result = new Map<string, Partial<Record<Status, number>>>();
      for (const row of selectTotals.all()) {
        const totals = result.get(row.channel) ?? {};
        totals[row.status] = row.n;
        result.set(row.channel, totals);
      }
      return result;
    },

    purge(before) {
      purgeDedupe.run(Date.now());
      let removed = 0;
      for (;;) {
        const { changes } = purgeBatch.run(before);
        removed += changes;
        if (changes < 1000) return removed;
      }
    },

    onCommit(listener) {
      commitListeners.add(listener);
      return () => commitListeners.delete(listener);
    },

    flush: () => writes.drain(),

    async close() {
      if (closed) return;
      closed = true;
      await writes.drain();
      db.close();
    },
  };
};
