import { WaitingError, type ConnectionOptions, type Job, type Queue, type Worker } from 'bullmq';
import { dirname, relative } from 'node:path';
import type { Logger } from 'pino';
import type { ChannelConfig, DestinationConfig } from './config/contract.ts';
import type { ConnectorContext, EngineServices, Source } from './connector.ts';
import { destinationConnector, sourceConnector } from './connectors.ts';
import { createDeliveryTracker, type BlockedDelivery, type DeliveryOutcome, type SkipOutcome } from './delivery-tracker.ts';
import type { Destination } from './destinations/destination.ts';
import { FerryError, describeError, isFerryError, isPermanent } from './errors.ts';
import { decodeAs, encodeHl7 } from './hl7/charset.ts';
import { createIntake, type Intake } from './intake.ts';
import { TRANSFORM_STAGE, destinationStage, type OutputMeta } from './message.ts';
import {
  createQueue,
  createWorker,
  deliveryJobId,
  destinationQueueName,
  inboundQueueName,
  mayRetry,
  missingJobs,
  requeueAbandoned,
  retryDelay,
  type DeliveryJob,
  type InboundJob,
} from './queues.ts';
import { createTranslator, type ScriptStatus, type Translator } from './sandbox/translator.ts';
import type { MessageStore, QueuedDelivery } from './store/message-store.ts';

// Wires one channel: source → inbound queue → translator → one queue per destination → send.
// Every hop re-reads content from the message log by id, so each worker can be replayed after a
// crash: a stage already recorded as done is skipped, not repeated.

export type ChannelState = 'stopped' | 'running' | 'error';

export interface ChannelInfo {
  name: string;
  state: ChannelState;
  source: string;
  script: ScriptStatus | null;
  lastError: string | null;
  queues: Record<string, number>;
  /** Deliveries that failed and are being retried in place (a fifo destination's head): what holds a queue. */
  blocked: BlockedDelivery[];
}

export interface Channel {
  readonly name: string;
  readonly config: ChannelConfig;
  readonly intake: Intake;
  /** Now, synchronously (sources answering requests read it: a stopped channel's path refuses). */
  state(): ChannelState;
  /**
   * Starts workers, then the source: intake opens only once the channel can process. A failed
   * start releases what it had started and leaves the channel in `error`.
   */
  start(): Promise<void>;
  /**
   * Closes the source first, then lets in-flight work finish; queued work stays in Redis and the
   * intake keeps accepting hand-offs from other channels (they wait in the queue for the next start).
   */
  stop(): Promise<void>;
  info(): Promise<ChannelInfo>;
  /**
   * An operator's skip of a delivery in progress (admin API): it stops being tried at once, is
   * recorded `error` (DELIVERY_SKIPPED, naming `actor`) and the destination goes on with the next.
   */
  skip(destination: string, id: string, output: number, actor: string): Promise<SkipOutcome>;
  /** The bound port of an MLLP source (useful with port 0). */
  sourcePort(): number | undefined;
  /**
   * Queues again what the message log says is still to do and Redis no longer holds: messages
   * still `received`, deliveries still `queued`. Run at start, and by the engine when Redis has
   * restarted, which may lose its last writes (appendfsync everysec). A running channel only.
   */
  resync(): Promise<void>;
  /** stop(), then release the channel's Redis handles: for engine shutdown. */
  close(): Promise<void>;
}

export interface ChannelDeps {
  store: MessageStore;
  connection: ConnectionOptions;
  logger: Logger;
  /** engine.commitTimeout: how long intake waits for Redis before refusing. */
  commitTimeoutMs?: number;
  /** What the engine runs for sources and destinations (other channels' intakes, the HTTPS listener …). */
  services: EngineServices;
}

/** Concurrent deliveries for `order: parallel`; `fifo` is one at a time. */
const PARALLEL_DELIVERIES = 8;
/** Delivery jobs queued per round trip to Redis, when a message's are queued and at recovery. */
const DELIVERY_PAGE = 1_000;
/** Recovery logs its progress every this many jobs queued again. */
const RECOVERY_PROGRESS = 100_000;
const WORKER_ERROR_LOG_INTERVAL_MS = 30_000;

const sourceSummary = (config: ChannelConfig): string => sourceConnector(config.source).describe(config.source);

export const createChannel = (config: ChannelConfig, deps: ChannelDeps): Channel => {
  const { store, connection } = deps;
  const logger = deps.logger.child({ channel: config.name });
  const inbound: Queue<InboundJob> = createQueue<InboundJob>(inboundQueueName(config.name), connection);
  const deliveryQueues = new Map(
    config.destinations.map((d) => [d.name, createQueue<DeliveryJob>(destinationQueueName(config.name, d.name), connection)]),
  );
  const destinationNames = config.destinations.map((d) => d.name);
  const intake = createIntake({
    channel: config.name,
    store,
    queue: inbound,
    logger,
    commitTimeoutMs: deps.commitTimeoutMs,
    maxQueued: config.maxQueued,
    dedupe: config.dedupe,
  });

  let state: ChannelState = 'stopped';
  let lastError: string | null = null;
  let translator: Translator | undefined;
  // What a stopped channel shows of its script: the last running version, or none loaded yet.
  let scriptShown: ScriptStatus | null = config.script
    ? { file: relative(dirname(dirname(config.script)), config.script), version: '', loadedAt: '' }
    : null;
  let source: Source | undefined;
  let workers: Worker[] = [];
  let destinations = new Map<string, Destination>();
  // Aborted on stop so that deliveries waiting to retry hand their job back at once.
  let stopping = new AbortController();
  const deliveries = createDeliveryTracker();

  const noteError = (message: string): void => {
    lastError = `${new Date().toISOString()} ${message}`;
  };

  /** Undoes start in reverse, whatever part of it ran. */
  const release = async (): Promise<void> => {
    stopping.abort();
    await source?.stop();
    source = undefined;
    await intake.drain();
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
    await Promise.all([...destinations.values()].map((d) => d.close()));
    destinations = new Map();
    if (translator) scriptShown = translator.status();
    await translator?.close();
    translator = undefined;
  };

  const deliveryJob = (id: string, destination: string, output: number) => ({
    name: 'deliver',
    data: { id, output },
    opts: { jobId: deliveryJobId(id, destination, output) },
  });

  /**
   * Queues the message's deliveries the log holds as `queued`, a page at a time: a message may have
   * any number of outputs (an older Ferry had no maxOutputs), and each page's wait for Redis lets the
   * other channels' work run in between.
   */
  const enqueueDeliveries = async (id: string): Promise<void> => {
    for (const destination of config.destinations) {
      const queue = deliveryQueues.get(destination.name)!;
      for (let after = -1; ; ) {
        const outputs = store.queuedOutputs(id, destination.name, after, DELIVERY_PAGE);
        if (outputs.length > 0) await queue.addBulk(outputs.map((output) => deliveryJob(id, destination.name, output)));
        if (outputs.length < DELIVERY_PAGE) break;
        after = outputs.at(-1)!;
      }
    }
  };

  /**
   * Delivery jobs for destination stages the message log holds as `queued` that Redis has lost,
   * in arrival order, a page of deliveries at a time (not of messages: one message may hold a
   * million). A job exists from the moment a transform queues it until its delivery is recorded
   * (retries happen inside it), so a missing one was lost, or is about to be added by the transform
   * that recorded the stage: adding it under the same job id is harmless either way. A destination
   * no longer in the config has nothing to deliver to.
   */
  const recoverDeliveries = async (): Promise<number> => {
    let recovered = 0;
    for (const destination of config.destinations) {
      const queue = deliveryQueues.get(destination.name)!;
      for (let after: QueuedDelivery | undefined; ; ) {
        const page = store.queuedDeliveries(config.name, destination.name, after, DELIVERY_PAGE);
        const jobIds = page.map(({ id, output }) => deliveryJobId(id, destination.name, output));
        const missing = new Set(await missingJobs(queue, jobIds));
        const lost = page.filter((_, i) => missing.has(jobIds[i]!));
        if (lost.length > 0) await queue.addBulk(lost.map(({ id, output }) => deliveryJob(id, destination.name, output)));
        // A large backlog takes minutes (~0.1 ms a job): say it is moving.
        if (Math.floor((recovered + lost.length) / RECOVERY_PROGRESS) > Math.floor(recovered / RECOVERY_PROGRESS)) {
          logger.info({ destination: destination.name, recovered: recovered + lost.length }, 'queueing again deliveries Redis did not hold');
        }
        recovered += lost.length;
        if (page.length < DELIVERY_PAGE) break;
        after = page.at(-1);
      }
    }
    if (recovered > 0) logger.warn({ recovered }, 'queued deliveries the message log held as queued but Redis did not');
    return recovered;
  };

  const requeueMissing = async (): Promise<void> => {
    await intake.recover();
    await recoverDeliveries();
  };

  /** Runs the translator (or passes the bytes through) and records the outcome. */
  const transform = async (id: string): Promise<void> => {
    const message = store.load(id);
    if (!message) {
      logger.warn({ id }, 'queued message is not in the message log (purged?); skipped');
      return;
    }
    const done = store.stageStatus(id, TRANSFORM_STAGE);
    if (done === 'filtered' || done === 'error') return;
    if (done === 'transformed') {
      // Replayed after a crash between recording and queueing: queue what is still to deliver.
      await enqueueDeliveries(id);
      return;
    }

    let outputs: Buffer[];
    let meta: Array<OutputMeta | null> | undefined;
    let logs = '';
    if (!translator) {
      outputs = [message.raw]; // no script: the received bytes go on unchanged
    } else {
      try {
        const result = await translator.run({ id, text: decodeAs(message.raw, message.charset) });
        logs = result.logs.map((line) => `${line.level} ${line.message}`).join('\n');
        if (result.outputs === null || result.outputs.length === 0) {
          await store.recordTransform(id, { status: 'filtered', logs });
          return;
        }
        outputs = result.outputs.map((text) => Buffer.from(encodeHl7(text, message.charset)));
        meta = result.meta;
      } catch (error) {
        if (!isPermanent(error)) throw error; // the sandbox failed, not the script: retry the job
        logger.warn({ id, err: error }, `script error: ${describeError(error)}`);
        noteError(describeError(error));
        await store.recordTransform(id, { status: 'error', error: describeError(error), logs });
        return;
      }
    }
    await store.recordTransform(id, {
      status: 'transformed',
      outputs,
      ...(meta ? { meta } : {}),
      destinations: destinationNames,
      logs,
    });
    await enqueueDeliveries(id);
  };

  /** Sends one output to one destination, retrying in place so a `fifo` queue keeps its order. */
  const deliver = async (destination: DestinationConfig, job: Job<DeliveryJob>, token: string | undefined): Promise<void> => {
    const { id, output } = job.data;
    const stage = destinationStage(destination.name, output);
    if (store.stageStatus(id, stage) === 'sent') return;
    const message = store.load(id);
    const content = store.output(id, output);
    const meta = store.outputMeta(id, output);
    if (!message || !content) {
      logger.warn({ id, destination: destination.name }, 'output is not in the message log (purged?); skipped');
      return;
    }
    const send = destinations.get(destination.name)!;
    const tracked = deliveries.begin(destination.name, id, output);
    let outcome: DeliveryOutcome = 'released';
    let lastReason: string | undefined;
    /** Records the delivery as failed for good: given up, refused, or skipped by an operator. */
    const fail = async (attempts: number, final: string): Promise<void> => {
      logger.warn({ id, destination: destination.name, attempt: attempts }, `delivery failed: ${final}`);
      noteError(`${destination.name}: ${final}`);
      await store.recordDelivery(id, stage, { status: 'error', attempts, error: final });
    };
    const skip = async (attempts: number): Promise<void> => {
      const last = lastReason === undefined ? '' : `; last error: ${lastReason}`;
      await fail(attempts, describeError(new FerryError('DELIVERY_SKIPPED', `skipped by ${tracked.skippedBy} after ${attempts} attempt${attempts === 1 ? '' : 's'}${last}`)));
      outcome = 'skipped';
    };
    try {
      for (let attempt = 1; ; attempt++) {
        let response: string;
        try {
          response = await tracked.attempt(
            send.send({
              id,
              channel: config.name,
              destination: destination.name,
              output,
              content,
              ...(meta ? { meta } : {}),
              controlId: message.controlId,
              charset: message.charset,
              receivedAt: message.receivedAt,
              signal: tracked.signal,
            }),
          );
        } catch (error) {
          if (tracked.skippedBy !== undefined) return await skip(attempt);
          const reason = describeError(error);
          lastReason = reason;
          if (isPermanent(error) || !mayRetry(destination.retry, attempt)) {
            await fail(attempt, isPermanent(error) ? reason : `DESTINATION_GAVE_UP: after ${attempt} attempts: ${reason}`);
            outcome = 'error';
            return;
          }
          // A destination that knows when to come back (Retry-After, an open circuit breaker) is not
          // asked sooner, nor later than maxDelay.
          const retryAfterMs = isFerryError(error) ? error.details?.['retryAfterMs'] : undefined;
          const backoff = retryDelay(destination.retry, attempt);
          const delay = typeof retryAfterMs === 'number' ? Math.max(backoff, Math.min(retryAfterMs, destination.retry.maxDelayMs)) : backoff;
          logger.info({ id, destination: destination.name, attempt, delay }, `delivery failed, retrying: ${reason}`);
          await store.recordDelivery(id, stage, { status: 'queued', attempts: attempt, error: reason });
          tracked.failed(attempt, reason, Date.now() + delay);
          try {
            await tracked.pause(delay, stopping.signal);
          } catch {
            if (tracked.skippedBy !== undefined) return await skip(attempt);
            // Stopping: hand the job back to the front of its queue; it resumes on the next start.
            await job.moveToWait(token);
            throw new WaitingError();
          }
          continue;
        }
        await store.recordDelivery(id, stage, { status: 'sent', attempts: attempt, response });
        outcome = 'sent';
        return;
      }
    } finally {
      tracked.end(outcome);
    }
  };

  const onJobFailed = (job: Job<InboundJob | DeliveryJob> | undefined, error: Error): void => {
    if (!job || job.attemptsMade < (job.opts.attempts ?? 1)) return;
    noteError(describeError(error));
    store.recordError(job.data.id, `gave up after ${job.attemptsMade} attempts: ${describeError(error)}`).catch(() => undefined);
  };

  // Every worker reports each failed reconnect while Redis is down: one line per outage is enough.
  let workerErrorLoggedAt = 0;
  let workerErrorsSuppressed = 0;
  const logWorkerError = (error: Error): void => {
    if (Date.now() - workerErrorLoggedAt < WORKER_ERROR_LOG_INTERVAL_MS) {
      workerErrorsSuppressed++;
      return;
    }
    logger.warn({ err: error, suppressed: workerErrorsSuppressed }, `queue worker: ${error.message}`);
    workerErrorLoggedAt = Date.now();
    workerErrorsSuppressed = 0;
  };

  /** What the channel's source and destinations are made with (connector.ts). */
  const context: ConnectorContext = {
    ...deps.services,
    channel: config.name,
    logger,
    intake,
    channelOf: (id) => store.load(id)?.channel,
  };

  const startWorkers = (): Worker[] => {
    const all: Worker[] = [
      createWorker<InboundJob>(inboundQueueName(config.name), (job) => transform(job.data.id), {
        concurrency: config.concurrency,
        connection,
      }),
      ...config.destinations.map((destination) =>
        createWorker<DeliveryJob>(destinationQueueName(config.name, destination.name), (job, token) => deliver(destination, job, token), {
          concurrency: destination.order === 'fifo' ? 1 : PARALLEL_DELIVERIES,
          connection,
        }),
      ),
    ];
    for (const worker of all) {
      worker.on('failed', onJobFailed);
      worker.on('error', logWorkerError);
      void worker.run();
    }
    return all;
  };

  return {
    name: config.name,
    config,
    intake,
    state: () => state,

    async start() {
      if (state === 'running') return;
      stopping = new AbortController();
      try {
        if (config.script) {
          translator = createTranslator({ channel: config.name, scriptPath: config.script, limits: config.scriptLimits, logger, destinations: config.destinations });
          await translator.ready();
        }
        destinations = new Map(config.destinations.map((d) => [d.name, destinationConnector(d).create(d, context)]));
        // What a killed engine left unfinished goes first, in its order, before any new work.
        let abandoned = 0;
        for (const queue of [inbound, ...deliveryQueues.values()]) abandoned += await requeueAbandoned(queue);
        if (abandoned > 0) logger.warn({ jobs: abandoned }, 'resumed jobs an earlier engine left in progress');
        await requeueMissing();
        workers = startWorkers();
        await Promise.all(workers.map((w) => w.waitUntilReady()));
        source = sourceConnector(config.source).create(config.source, context);
        await source?.start();
        state = 'running';
        logger.info({ source: sourceSummary(config) }, 'channel started');
      } catch (error) {
        await release().catch((cause) => logger.error({ err: cause }, 'releasing a channel that failed to start'));
        state = 'error';
        noteError(describeError(error));
        throw error;
      }
    },

    async stop() {
      if (state === 'stopped') return;
      await release();
      state = 'stopped';
      logger.info('channel stopped');
    },

    async info() {
      const queues: Record<string, number> = {
        inbound: await inbound.count(),
      };
      for (const [name, queue] of deliveryQueues) queues[name] = await queue.count();
      return {
        name: config.name,
        state,
        source: sourceSummary(config),
        script: translator?.status() ?? scriptShown,
        lastError,
        queues,
        blocked: deliveries.blocked(),
      };
    },

    skip: (destination, id, output, actor) => deliveries.skip(destination, id, output, actor),

    sourcePort: () => source?.port,

    async resync() {
      if (state === 'running') await requeueMissing();
    },

    async close() {
      await this.stop();
      await Promise.all([inbound, ...deliveryQueues.values()].map((q) => q.close()));
    },
  };
};
