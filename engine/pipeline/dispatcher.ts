// Feeds a channel's inbound queue with the messages intake has committed to the message log. A job
// is added at once when the channel's translator is waiting for work; while it is busy, messages
// gather and go as one job the moment it takes the one before. So an idle channel answers each
// message without delay, and a busy one pays Redis per batch, whatever the senders' pace — one
// sender waiting for each ACK included.
//
// The message log is what makes a message durable (intake acknowledges once it is committed there);
// a job only schedules the work. Each job's id is recorded with its messages before it is added, so
// recovery can tell which ones Redis lost. When Redis does not answer, messages wait here and the
// add is tried again; the channel's maxQueued bounds how many.
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { describeError } from '../errors.ts';
import { newMessageId } from '../wire/ids.ts';
import { logThrottle } from '../log-throttle.ts';
import type { MessageStore } from '../store/contract.ts';
import { retryDelay } from './backoff.ts';
import { inboundJob, type InboundJob } from './queues.ts';

/** Messages per job at most; more waiting go in the next one. */
const MAX_JOB = 1_000;
const RETRY = { attempts: 0, backoff: 'exponential', delayMs: 100, maxDelayMs: 5_000 } as const;
const FAILURE_LOG_INTERVAL_MS = 30_000;

export interface Dispatcher {
  /** Hands committed messages over; they are queued at once or with the next batch. */
  dispatch(ids: string[]): void;
  /** The channel's translator took a job from the queue (its worker's `active` event). */
  taken(): void;
  /** Whether a translator takes jobs now; while none does, messages are queued at once, a turn's worth per job. */
  setConsuming(consuming: boolean): void;
  /** Messages handed over and not yet in a job: recovery leaves them alone. */
  pending(): ReadonlySet<string>;
  /** Resolves once everything handed over so far is in a job (or the add has failed for now). */
  drain(): Promise<void>;
  /** Stops retrying; what is still pending is queued again by the next start's recovery. */
  close(): void;
}

export const createDispatcher = ({ queue, store, logger }: { queue: Queue<InboundJob>; store: MessageStore; logger: Logger }): Dispatcher => {
  let pending: string[] = [];
  const pendingSet = new Set<string>();
  /** Jobs added and not yet taken by the translator. */
  let waiting = 0;
  let consuming = false;
  let adding: Promise<void> | undefined;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const failureLog = logThrottle(FAILURE_LOG_INTERVAL_MS, ({ count }) =>
    logger.warn({ failures: count }, `${count} more tries to queue messages failed; they wait in the message log`),
  );

  const due = (): boolean => pending.length > 0 && !adding && !retryTimer && !closed && (!consuming || waiting === 0 || pending.length >= MAX_JOB);

  const add = async (ids: string[]): Promise<void> => {
    const job = newMessageId();
    // Recorded first: a crash before the add leaves the messages naming a job Redis does not hold,
    // which recovery finds.
    await store.assignJob(job, ids.map((id) => ({ id })));
    await queue.add('messages', inboundJob(ids), { jobId: job });
  };

  const flush = (): void => {
    if (!due()) return;
    const ids = pending.slice(0, MAX_JOB);
    pending = pending.slice(ids.length);
    waiting += 1;
    adding = add(ids).then(
      () => {
        failures = 0;
        for (const id of ids) pendingSet.delete(id);
      },
      (error: unknown) => {
        waiting -= 1;
        pending = [...ids, ...pending];
        failures += 1;
        if (failureLog.admit()) logger.warn({ err: error, messages: pending.length }, `cannot queue messages, trying again: ${describeError(error)}`);
        retryTimer = setTimeout(() => {
          retryTimer = undefined;
          flush();
        }, retryDelay(RETRY, failures)).unref();
      },
    );
    void adding.finally(() => {
      adding = undefined;
      flush();
    });
  };

  return {
    dispatch(ids) {
      for (const id of ids) {
        if (pendingSet.has(id)) continue;
        pendingSet.add(id);
        pending.push(id);
      }
      // Once the current turn's messages have all arrived (intake commits a turn at a time).
      setImmediate(flush);
    },
    taken() {
      waiting = Math.max(0, waiting - 1);
      flush();
    },
    setConsuming(value) {
      consuming = value;
      flush();
    },
    pending: () => pendingSet,
    async drain() {
      while (adding || (due() && !retryTimer)) {
        flush();
        await adding;
      }
    },
    close() {
      closed = true;
      clearTimeout(retryTimer);
      retryTimer = undefined;
      failureLog.flush();
    },
  };
};
