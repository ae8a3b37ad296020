import type { ConnectionOptions, Job, Queue, Worker } from 'bullmq';
import { dirname, relative } from 'node:path';
import type { Logger } from 'pino';
import type { ChannelConfig } from './config/contract.ts';
import type { ConnectorContext, EngineServices, Source } from './connector.ts';
import { destinationConnector, sourceConnector } from './connectors.ts';
import type { Destination } from './destinations/destination.ts';
import { describeError } from './errors.ts';
import { createIntake, type Intake } from './intake.ts';
import { logThrottle } from './log-throttle.ts';
import { deliveryStep } from './pipeline/delivery-step.ts';
import { createQueue, createWorker, deliveryWork, destinationQueueName, inboundQueueName, inboundWork, requeueAbandoned, type DeliveryJob, type InboundJob } from './pipeline/queues.ts';
import { recoverLostWork } from './pipeline/recovery.ts';
import { transformStep } from './pipeline/transform-step.ts';
import { createDeliveryTracker, type BlockedDelivery, type SkipOutcome } from './pipeline/delivery-tracker.ts';
import { createTranslator, type ScriptStatus, type Translator } from './sandbox/translator.ts';
import type { MessageStore } from './store/contract.ts';

// Wires one channel: source → intake → inbound queue → translator step → one queue per destination
// → destination step (engine/pipeline/), and starts and stops it in that order and back.

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
  /** engine.commitTimeout: how long intake waits for the message log before refusing. */
  commitTimeoutMs?: number;
  /** What the engine runs for sources and destinations (other channels' intakes, the HTTPS listener …). */
  services: EngineServices;
}

/** Concurrent delivery jobs for `order: parallel`; `fifo` is one at a time. */
const PARALLEL_DELIVERIES = 8;
/** Every worker reports each failed reconnect while Redis is down: one line per interval is enough. */
const WORKER_ERROR_LOG_INTERVAL_MS = 30_000;

const sourceSummary = (config: ChannelConfig): string => sourceConnector(config.source).describe(config.source);

export const createChannel = (config: ChannelConfig, deps: ChannelDeps): Channel => {
  const { store, connection } = deps;
  const logger = deps.logger.child({ channel: config.name });
  const inbound: Queue<InboundJob> = createQueue<InboundJob>(inboundQueueName(config.name), connection);
  const deliveryQueues = new Map(
    config.destinations.map((d) => [d.name, createQueue<DeliveryJob>(destinationQueueName(config.name, d.name), connection)]),
  );
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
    // Nothing takes jobs from now on: what intake still holds goes to the queue as it comes.
    intake.dispatcher.setConsuming(false);
    await intake.drain();
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
    await Promise.all([...destinations.values()].map((d) => d.close()));
    destinations = new Map();
    if (translator) scriptShown = translator.status();
    await translator?.close();
    translator = undefined;
    workerErrors.flush();
  };

  const transform = transformStep({ config, store, translator: () => translator, deliveryQueues, logger, noteError });

  const recover = (): Promise<number> =>
    recoverLostWork({ channel: config.name, store, inbound, deliveryQueues, logger, dispatching: intake.dispatcher.pending() });

  /** A job the engine could not finish, given up after its attempts: its messages are marked error. */
  const onJobFailed =
    <T>(idsOf: (data: T) => string[]) =>
    (job: Job<T> | undefined, error: Error): void => {
      if (!job || job.attemptsMade < (job.opts.attempts ?? 1)) return;
      noteError(describeError(error));
      for (const id of new Set(idsOf(job.data))) {
        store.recordError(id, `gave up after ${job.attemptsMade} attempts: ${describeError(error)}`).catch(() => undefined);
      }
    };

  const workerErrors = logThrottle(WORKER_ERROR_LOG_INTERVAL_MS, ({ count }) => logger.warn({ suppressed: count }, `queue worker: ${count} more errors`));
  const logWorkerError = (error: Error): void => {
    if (workerErrors.admit()) logger.warn({ err: error }, `queue worker: ${error.message}`);
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
    const inboundWorker = createWorker<InboundJob>(inboundQueueName(config.name), transform, { concurrency: config.concurrency, connection });
    inboundWorker.on('failed', onJobFailed(inboundWork));
    // Each job taken lets the messages gathered meanwhile go as the next one.
    inboundWorker.on('active', () => intake.dispatcher.taken());
    const deliveryWorkers = config.destinations.map((destination) => {
      const step = deliveryStep({
        channel: config.name,
        destination,
        store,
        send: () => destinations.get(destination.name)!,
        queue: deliveryQueues.get(destination.name)!,
        tracker: deliveries,
        logger,
        noteError,
        stopping: () => stopping.signal,
      });
      const concurrency = destination.order === 'fifo' ? 1 : PARALLEL_DELIVERIES;
      const worker = createWorker<DeliveryJob>(destinationQueueName(config.name, destination.name), step, { concurrency, connection });
      worker.on('failed', onJobFailed((data: DeliveryJob) => deliveryWork(data).map((work) => work.id)));
      return worker;
    });
    const all: Worker[] = [inboundWorker, ...deliveryWorkers];
    for (const worker of all) {
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
        await recover();
        workers = startWorkers();
        await Promise.all(workers.map((w) => w.waitUntilReady()));
        intake.dispatcher.setConsuming(true);
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
      // Counted in the message log: a job holds a batch, so Redis's job counts would not say how many messages wait.
      const depths = store.queueDepths(config.name);
      const queues: Record<string, number> = { inbound: depths.inbound };
      for (const destination of config.destinations) queues[destination.name] = depths.destinations[destination.name] ?? 0;
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
      if (state === 'running') await recover();
    },

    async close() {
      await this.stop();
      intake.dispatcher.close();
      await Promise.all([inbound, ...deliveryQueues.values()].map((q) => q.close()));
    },
  };
};
