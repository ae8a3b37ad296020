// "The message log says unfinished, Redis lacks the job → queue it again", for a channel's inbound
// work (messages still `received`) and its deliveries (still `queued`) alike. Run when a channel
// starts and when Redis has restarted (it may lose its last writes: appendfsync everysec). The log
// records the job each piece of work was queued under, so a page of work costs one existence check
// per job, and only what Redis lost is queued again — under a new job, which the log then records.
// A page at a time, whatever the log holds: one message of an older Ferry may hold a million
// deliveries.
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { newMessageId } from '../wire/ids.ts';
import type { MessageStore, QueuedDelivery, ReceivedWork } from '../store/contract.ts';
import {
  deliveryJob,
  deliveryJobId,
  inboundJob,
  legacyDeliveryJobId,
  missingJobs,
  type DeliveryJob,
  type InboundJob,
} from './queues.ts';

/** Pieces of work looked up, checked and queued again per round trip to Redis. */
const PAGE = 1_000;
/** Recovery logs its progress every this many pieces queued again (a million take minutes). */
const PROGRESS = 100_000;

export interface RecoveryDeps {
  channel: string;
  store: MessageStore;
  inbound: Queue<InboundJob>;
  deliveryQueues: ReadonlyMap<string, Queue<DeliveryJob>>;
  /** The channel's logger. */
  logger: Logger;
  /** Messages intake has handed over and that are about to be queued: not lost. */
  dispatching?: ReadonlySet<string>;
}

/**
 * The one paging loop: each page of unfinished work, the jobs it was queued under asked of Redis
 * together, and the work whose job is gone handed to `requeue`. Returns how much was queued again.
 */
const requeueLost = async <W>(
  next: (after: W | undefined) => W[],
  /** The job `work` is queued under; undefined: leave it alone. */
  jobOf: (work: W) => string | undefined,
  queue: Queue,
  requeue: (lost: W[]) => Promise<void>,
  progress: (requeued: number) => void,
): Promise<number> => {
  let requeued = 0;
  for (let after: W | undefined; ; ) {
    const page = next(after);
    if (page.length === 0) break;
    const jobs = new Set(page.map(jobOf).filter((job) => job !== undefined));
    const missing = new Set(await missingJobs(queue, [...jobs]));
    const lost = page.filter((work) => missing.has(jobOf(work)!));
    if (lost.length > 0) await requeue(lost);
    if (Math.floor((requeued + lost.length) / PROGRESS) > Math.floor(requeued / PROGRESS)) progress(requeued + lost.length);
    requeued += lost.length;
    if (page.length < PAGE) break;
    after = page.at(-1);
  }
  return requeued;
};

/** Queues again what the message log holds as still to do and Redis does not; returns how much. */
export const recoverLostWork = async ({ channel, store, inbound, deliveryQueues, logger, dispatching }: RecoveryDeps): Promise<number> => {
  const messages = await requeueLost<ReceivedWork>(
    (after) => store.receivedSince(channel, after?.seq ?? 0, PAGE),
    // About to be queued by intake: not lost. (A log written before jobs were recorded queued each
    // message under its own id.)
    (work) => (dispatching?.has(work.id) ? undefined : (work.job ?? work.id)),
    inbound,
    async (lost) => {
      const job = newMessageId();
      const ids = lost.map((work) => work.id);
      // Recorded first: a crash before the job is added leaves the work pointing at a job Redis
      // does not hold, which the next recovery finds.
      await store.assignJob(job, ids.map((id) => ({ id })));
      await inbound.add('messages', inboundJob(ids), { jobId: job });
    },
    (requeued) => logger.info({ requeued }, 'queueing again messages Redis did not hold'),
  );
  if (messages > 0) {
    logger.warn({ recovered: messages }, 'queued messages the message log held as received but Redis did not (stored just before a crash, or lost by Redis)');
  }

  let deliveries = 0;
  for (const [destination, queue] of deliveryQueues) {
    deliveries += await requeueLost<QueuedDelivery>(
      (after) => store.queuedDeliveries(channel, destination, after, PAGE),
      (work) => work.job ?? legacyDeliveryJobId(work.id, destination, work.output),
      queue,
      async (lost) => {
        const job = deliveryJobId(newMessageId(), destination, 0);
        await store.assignJob(job, lost, destination);
        await queue.add('deliveries', deliveryJob(lost), { jobId: job });
      },
      (requeued) => logger.info({ destination, recovered: requeued }, 'queueing again deliveries Redis did not hold'),
    );
  }
  if (deliveries > 0) logger.warn({ recovered: deliveries }, 'queued deliveries the message log held as queued but Redis did not');
  return messages + deliveries;
};
