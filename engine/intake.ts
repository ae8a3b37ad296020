import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { createBatcher } from './batcher.ts';
import { FerryError, describeError } from './errors.ts';
import { decodeAs, decodeHl7 } from './hl7/charset.ts';
import { isAck, readHeader, type Hl7Header } from './hl7/header.ts';
import { newMessageId } from './wire/ids.ts';
import { missingJobs, type InboundJob } from './queues.ts';
import type { MessageStore } from './store/message-store.ts';

// Intake: the one place a message becomes Ferry's responsibility. It is committed to the message
// log and to the channel's inbound queue, and only then reported accepted — sources acknowledge
// (MLLP AA, HTTP 200) on that report alone.

export interface IntakeOptions {
  /** Where it came from, for the log: "mllp 10.1.2.3:5123", "channel adt-archive". */
  source: string;
  /** MLLP sources accept only HL7; a hand-off from another channel may carry anything. */
  requireHl7: boolean;
  /** A fixed id makes the intake idempotent (hand-offs replayed after a crash). */
  id?: string;
  parentId?: string;
  /** An operator's deliberate resend: never suppressed as a duplicate (dedupe). */
  resend?: boolean;
  /** The bytes' character set when the source knows it better than MSH-18 (a file source's `encoding`). */
  charset?: string;
}

export type IntakeResult =
  /**
   * Committed. `duplicate`: this id was already known (a replayed hand-off), or — with `duplicateOf` —
   * the channel's dedupe found the same sender and MSH-10 within its window: acknowledge it, but it
   * is logged as filtered and only the first message is processed.
   */
  | { kind: 'accepted'; id: string; header: Hl7Header | undefined; charset: string; duplicate: boolean; duplicateOf?: string }
  /** Refused for what it is (not HL7, undecodable): the sender must not retry it unchanged. */
  | { kind: 'rejected'; id: string; header: Hl7Header | undefined; charset: string; error: FerryError }
  /** An inbound ACK: never processed and never acknowledged (an engine must not ACK an ACK). */
  | { kind: 'ignored'; header: Hl7Header }
  /**
   * Not committed, the sender must keep it and retry: the message log or Redis is unavailable
   * (COMMIT_FAILED), or the channel holds maxQueued unfinished messages (QUEUE_FULL). MLLP answers
   * AE, HTTPS 503.
   */
  | { kind: 'failed'; header: Hl7Header | undefined; charset: string; error: FerryError };

/** What undecodable bytes are shown and answered in: latin1 maps every byte to a character. */
const FALLBACK_CHARSET = '8859/1';

export interface Intake {
  accept(raw: Buffer, options: IntakeOptions): Promise<IntakeResult>;
  drain(): Promise<void>;
}

/** What the channel owning an intake gets in addition: recovery at start. */
export interface ChannelIntake extends Intake {
  /**
   * Queues the channel's messages that the log holds as received but Redis does not: stored just
   * before a crash (never acknowledged), or acknowledged and then lost by Redis (an OS crash within
   * its fsync window). Run at channel start, before the workers; returns how many were queued.
   */
  recover(): Promise<number>;
}

export interface IntakeDeps {
  channel: string;
  store: MessageStore;
  queue: Queue<InboundJob>;
  /** The channel's logger: its lines already name the channel. */
  logger: Logger;
  /** How long a commit may wait for Redis; default 5 s (engine.commitTimeout). */
  commitTimeoutMs?: number;
  /** Refuse new messages (QUEUE_FULL) while the channel holds this many unfinished ones. */
  maxQueued?: number;
  /** Duplicate suppression by sender (MSH-3, MSH-4) and MSH-10 within a window. */
  dedupe?: { windowMs: number };
}

const headerOf = (text: string): Hl7Header | undefined => {
  try {
    return readHeader(text);
  } catch {
    return undefined;
  }
};

/**
 * How long a commit may wait for Redis. The Redis client queues commands while it reconnects, so a
 * hung or restarting Redis would otherwise hold the ACK forever; past this the sender gets AE and
 * resends. (If the queued write lands later, the message is processed anyway: at least once.)
 */
const COMMIT_TIMEOUT_MS = 5_000;

/**
 * The backlog is read from the message log's per-status counters at most this often; in between it
 * is counted up per accepted message, so a burst cannot overshoot maxQueued by more than one read's
 * worth of messages that finished meanwhile.
 */
const DEPTH_REFRESH_MS = 100;

const RECOVER_PAGE = 1_000;

const withDeadline = <T>(work: Promise<T>, ms: number): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FerryError('REDIS_UNAVAILABLE', `Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
};

/** Who sent it and their control id; no identity (no dedupe) without an MSH-10. */
const dedupeIdOf = (header: Hl7Header | undefined): string | undefined =>
  header?.controlId ? JSON.stringify([header.sendingApplication, header.sendingFacility, header.controlId]) : undefined;

const formatWindow = (ms: number): string =>
  ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;

interface Enqueue {
  id: string;
  dedupeId: string | undefined;
}

export const createIntake = (deps: IntakeDeps): ChannelIntake => {
  const { channel, store, queue, logger, commitTimeoutMs = COMMIT_TIMEOUT_MS, maxQueued, dedupe } = deps;
  // Queue additions of one event-loop turn go to Redis as one addBulk round trip. Each resolves with
  // the id its job is queued under: its own, or with dedupe the first message's id (BullMQ's
  // deduplication sets its key with SET NX PX inside the same script that adds the job, so the key
  // exists exactly when the first message is queued — never for a message that was not).
  const enqueue = createBatcher<Enqueue, string>(async (items) => {
    const jobs = await queue.addBulk(
      items.map(({ id, dedupeId }) => ({
        name: 'message',
        data: { id },
        opts: { jobId: id, ...(dedupe && dedupeId ? { deduplication: { id: dedupeId, ttl: dedupe.windowMs } } : {}) },
      })),
    );
    return jobs.map((job, i) => job.id ?? items[i]!.id);
  });

  let depth = 0;
  let depthReadAt = Number.NEGATIVE_INFINITY;
  let full = false;
  /** Whether the channel is at maxQueued; logs once when it fills and once when it drains. */
  const isFull = (): boolean => {
    if (maxQueued === undefined) return false;
    const now = Date.now();
    if (now - depthReadAt >= DEPTH_REFRESH_MS) {
      try {
        depth = store.unfinished(channel);
      } catch {
        return false; // the log is unusable: the commit below fails and says why
      }
      depthReadAt = now;
    }
    if (full !== depth >= maxQueued) {
      full = !full;
      if (full) logger.warn({ code: 'QUEUE_FULL', depth, maxQueued }, 'channel is full: refusing new messages until its backlog drains');
      else logger.info({ depth, maxQueued }, 'channel below maxQueued again: accepting messages');
    }
    return full;
  };

  /** Logs `id` as a duplicate of the message that holds the dedupe key. */
  const markDuplicate = async (id: string, first: string, controlId: string | undefined): Promise<void> => {
    const reason = `MESSAGE_DUPLICATE: duplicate of ${first} (same sender and MSH-10 within ${formatWindow(dedupe?.windowMs ?? 0)})`;
    logger.info({ id, duplicateOf: first, controlId }, 'duplicate message: acknowledged, not processed again');
    await store.recordDuplicate(id, reason).catch((cause) => logger.error({ id, err: cause }, 'could not mark a duplicate in the message log'));
  };

  return {
    async accept(raw, options) {
      const id = options.id ?? newMessageId();
      let text: string;
      let charset: string;
      try {
        ({ text, charset } = options.charset === undefined ? decodeHl7(raw) : { text: decodeAs(raw, options.charset), charset: options.charset });
      } catch (error) {
        if (!options.requireHl7) ({ text, charset } = { text: raw.toString('latin1'), charset: FALLBACK_CHARSET });
        else return refuse(error, raw.toString('latin1'), FALLBACK_CHARSET);
      }
      const header = headerOf(text);
      if (header && isAck(header)) return { kind: 'ignored', header };
      if (!header && options.requireHl7) {
        return refuse(new FerryError('HL7_NOT_HL7', 'the message does not start with an MSH segment'), text, charset);
      }
      // Before anything is stored: a full channel must not grow, not even its message log.
      if (isFull()) {
        const error = new FerryError('QUEUE_FULL', `channel ${channel} holds ${depth} unfinished messages (maxQueued ${maxQueued}); resend later`);
        return { kind: 'failed', header, charset, error };
      }

      const record = {
        id,
        channel,
        source: options.source,
        raw,
        text,
        charset,
        parentId: options.parentId ?? null,
        messageType: header?.messageType || null,
        controlId: header?.controlId || null,
        sender: header ? [header.sendingApplication, header.sendingFacility].filter(Boolean).join('@') || null : null,
      };
      let fresh: boolean;
      try {
        fresh = await store.receive(record);
      } catch (cause) {
        return fail(header, `cannot record the message: ${describeError(cause)}`, cause);
      }
      // A fixed id already taken by another channel is another message (one sender's message posted
      // to two channels), never a duplicate: refuse rather than acknowledge what will not be processed.
      if (!fresh && store.load(id)?.channel !== channel) return fail(header, `message id ${id} is already used by another channel`, undefined);
      // A replayed hand-off whose first copy is already being processed is not queued again.
      if (!fresh && store.load(id)?.status !== 'received') return { kind: 'accepted', id, header, charset, duplicate: true };
      let queuedAs: string;
      try {
        queuedAs = await withDeadline(enqueue.add({ id, dedupeId: options.resend ? undefined : dedupeIdOf(header) }), commitTimeoutMs);
      } catch (cause) {
        // Recorded but not queued: mark it so an operator sees it (and can resend), and refuse the ACK.
        await store.recordError(id, `COMMIT_FAILED: not queued: ${describeError(cause)}`).catch(() => undefined);
        return fail(header, `cannot queue the message: ${describeError(cause)}`, cause);
      }
      if (queuedAs !== id) {
        await markDuplicate(id, queuedAs, header?.controlId);
        return { kind: 'accepted', id, header, charset, duplicate: true, duplicateOf: queuedAs };
      }
      if (fresh) depth += 1;
      return { kind: 'accepted', id, header, charset, duplicate: !fresh };

      function fail(header: Hl7Header | undefined, message: string, cause: unknown): IntakeResult {
        const error = new FerryError('COMMIT_FAILED', message, { cause });
        logger.error({ source: options.source, err: cause }, error.message);
        return { kind: 'failed', header, charset, error };
      }

      async function refuse(error: unknown, shown: string, shownCharset: string): Promise<IntakeResult> {
        const reason = error instanceof FerryError ? error : new FerryError('HL7_ENCODING', describeError(error), { cause: error });
        logger.warn({ source: options.source, code: reason.code }, `refused: ${reason.message}`);
        await store
          .reject({ id, channel, source: options.source, raw, text: shown, charset: shownCharset, parentId: options.parentId ?? null }, describeError(reason))
          .catch((cause) => logger.error({ err: cause }, 'could not record a refused message'));
        return { kind: 'rejected', id, header: headerOf(shown), charset: shownCharset, error: reason };
      }
    },

    async recover() {
      let recovered = 0;
      for (let after = 0; ; ) {
        const page = store.receivedSince(channel, after, RECOVER_PAGE);
        if (page.length === 0) break;
        after = page.at(-1)!.seq;
        // A job's hash exists from the moment it is queued until it completes; by then its message
        // is no longer `received`.
        const missing = await missingJobs(queue, page.map(({ id }) => id));
        await Promise.all(
          missing.map(async (id) => {
            const message = store.load(id);
            const header = message ? headerOf(decodeAs(message.raw, message.charset)) : undefined;
            const queuedAs = await enqueue.add({ id, dedupeId: dedupeIdOf(header) });
            if (queuedAs !== id) await markDuplicate(id, queuedAs, header?.controlId);
          }),
        );
        recovered += missing.length;
        if (page.length < RECOVER_PAGE) break;
      }
      if (recovered > 0) {
        logger.warn({ recovered }, 'queued messages the message log held as received but Redis did not (stored just before a crash, or lost by Redis)');
      }
      return recovered;
    },

    drain: () => enqueue.drain(),
  };
};
