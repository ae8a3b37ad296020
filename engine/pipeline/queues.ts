import { Queue, Worker, type ConnectionOptions, type Job, type JobsOptions } from 'bullmq';
import { INTERNAL_RETRY, retryDelay } from './backoff.ts';

// Queue names, job shapes and the worker factory. A job is a batch: the messages (or deliveries)
// committed together, in order, so a busy channel pays Redis per batch, not per message. Jobs carry
// only ids (and output indexes): content stays in the message log on disk, so a backlog costs Redis
// a few bytes per message whatever the message size.

/** All Ferry keys live under this prefix, so an external Redis can be shared with other apps. */
export const QUEUE_PREFIX = 'ferry';

export const inboundQueueName = (channel: string): string => `${channel}.in`;
export const destinationQueueName = (channel: string, destination: string): string => `${channel}.to.${destination}`;

/** Messages to translate, in arrival order. (`id`: one message, as an older Ferry queued them.) */
export type InboundJob = { ids: string[] } | { id: string };

/**
 * Outputs to deliver to one destination, in order, as [message id, output]. `tried`, `lastError`: a
 * parallel destination's failing delivery split off into a job of its own, with the tries made so
 * far. (`id`, `output`: the one delivery an older Ferry queued per job.)
 */
export type DeliveryJob = { items: Array<[string, number]>; tried?: number; lastError?: string } | { id: string; output: number };

export interface DeliveryWork {
  id: string;
  output: number;
}

export const inboundWork = (job: InboundJob): string[] => ('ids' in job ? job.ids : [job.id]);

export const deliveryWork = (job: DeliveryJob): DeliveryWork[] =>
  'items' in job ? job.items.map(([id, output]) => ({ id, output })) : [{ id: job.id, output: job.output }];

export const inboundJob = (ids: string[]): InboundJob => ({ ids });

export const deliveryJob = (work: DeliveryWork[]): DeliveryJob => ({ items: work.map(({ id, output }) => [id, output]) });

// Job ids are derived from the work, so adding the same work twice (a transform replayed after a
// crash) is ignored while the first job still exists: an inbound job's deliveries are
// `<inbound job>.<destination>.<n>`. The message log records each message's and delivery's job, so
// recovery can tell which work Redis lost. (BullMQ forbids ':' in custom ids.)
export const deliveryJobId = (inboundJobId: string, destination: string, n: number): string => `${inboundJobId}.${destination}.${n}`;

/** The job id an older Ferry gave one message's delivery (for work queued before an upgrade). */
export const legacyDeliveryJobId = (id: string, destination: string, output: number): string => `${id}.${destination}.${output}`;

const jobOptions: JobsOptions = {
  removeOnComplete: true,
  // Failures are recorded in the message log; Redis keeps only work still to do.
  removeOnFail: true,
  // Processors retry delivery themselves (to keep FIFO order); a job fails only when the engine
  // cannot reach its own message log, which is worth retrying for a long time.
  attempts: INTERNAL_RETRY.attempts,
  backoff: { type: 'internal' },
};

export const createQueue = <T>(name: string, connection: ConnectionOptions): Queue<T> =>
  new Queue<T>(name, {
    connection,
    prefix: QUEUE_PREFIX,
    defaultJobOptions: jobOptions,
    // BullMQ keeps a stream of job events per queue (10,000 by default, ~2 MB); Ferry reads none of
    // them (the message log is its record), so keep only a short tail for debugging.
    streams: { events: { maxLen: 1_000 } },
  }) as Queue<T>;

/**
 * Puts the jobs a killed engine left active back at the head of their queue, in their order; call
 * it before this engine's workers start. Without it they would wait for their locks to expire
 * (lockDuration, then a stalled check) while the new workers take the jobs behind them: a `fifo`
 * destination would deliver message N+1 before N. Only one engine works a channel's queues (they go
 * with its message log), so whatever is active before its workers run belongs to a dead one.
 * A page at a time: however many there are, the engine holds `page` of them.
 */
export const requeueAbandoned = async (queue: Queue, page = 1_000): Promise<number> => {
  // Each move pushes onto the consuming end, so the oldest must go last: pages are taken newest
  // first (descending), and each move takes its job off the active list, so the next page is again
  // at its start. Bounded by the count, in case a job could not be moved (gone meanwhile).
  const total = await queue.getActiveCount();
  let moved = 0;
  while (moved < total) {
    const jobs = await queue.getJobs(['active'], 0, page - 1, false);
    if (jobs.length === 0) break;
    // Token "0" moves a job without owning its lock (the dead worker's lock just expires unused).
    for (const job of jobs) await job.moveToWait('0');
    moved += jobs.length;
  }
  return moved;
};

/**
 * Which of `jobIds` the queue does not hold: a job's hash exists from the moment it is added until it
 * completes (removeOnComplete). Asked together, the checks go to Redis back to back, and each is one
 * HEXISTS: ~2.5× faster than getJob, which loads and parses each job, for a recovery that may check
 * a million of them.
 */
export const missingJobs = async (queue: Queue, jobIds: string[]): Promise<string[]> => {
  const client = await queue.client;
  const found = await Promise.all(jobIds.map((jobId) => client.hexists(queue.toKey(jobId), 'name')));
  return jobIds.filter((_, i) => found[i] === 0);
};

export interface WorkerOptions {
  concurrency: number;
  connection: ConnectionOptions;
}

export const createWorker = <T>(
  name: string,
  processor: (job: Job<T>, token?: string) => Promise<void>,
  options: WorkerOptions,
): Worker<T> =>
  new Worker<T>(name, processor, {
    connection: options.connection,
    prefix: QUEUE_PREFIX,
    concurrency: options.concurrency,
    autorun: false,
    // A job whose worker died (kill -9) is handed to a live worker once its lock expires: this
    // bounds how long after a crash its messages resume (≈ lockDuration + stalledInterval).
    lockDuration: 10_000,
    stalledInterval: 5_000,
    // Crashes are not the job's fault: never fail a job for having been interrupted.
    maxStalledCount: 1_000,
    settings: { backoffStrategy: (attemptsMade: number) => retryDelay(INTERNAL_RETRY, attemptsMade) },
  });
