// A channel's translator step: one inbound job (messages committed together, in arrival order) is
// run through the channel's script in one round trip to its sandbox, every outcome is recorded (a
// transaction per slice, in-slices.ts), and the outputs are queued for each destination, a job per
// destination (and per DELIVERY_BATCH outputs). Each message re-reads its content from the message log, so a job
// replayed after a crash skips what is already recorded and only queues again what is still to do.
import type { Job, Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { ChannelConfig } from '../config/contract.ts';
import { FerryError, describeError, isPermanent } from '../errors.ts';
import { decodeAs, encodeHl7 } from '../hl7/charset.ts';
import type { Translator, TranslatorResult } from '../sandbox/translator.ts';
import type { MessageStore, TransformInput, TransformRecord } from '../store/contract.ts';
import { inSlices } from './in-slices.ts';
import {
  deliveryJob,
  deliveryJobId,
  inboundWork,
  legacyDeliveryJobId,
  type DeliveryJob,
  type DeliveryWork,
  type InboundJob,
} from './queues.ts';

/** Outputs per delivery job: a job closes at the first message that takes it past this many. */
const DELIVERY_BATCH = 500;
/** Deliveries of one replayed message looked up (and queued again) per round trip. */
const REPLAY_PAGE = 1_000;

export interface TransformStepDeps {
  config: ChannelConfig;
  store: MessageStore;
  /** The running translator; undefined for a channel without a script (bytes pass through). */
  translator: () => Translator | undefined;
  deliveryQueues: ReadonlyMap<string, Queue<DeliveryJob>>;
  /** The channel's logger. */
  logger: Logger;
  /** Shown as the channel's lastError. */
  noteError: (message: string) => void;
}

type Outcome = TranslatorResult | FerryError;

export const transformStep = ({ config, store, translator, deliveryQueues, logger, noteError }: TransformStepDeps) => {
  const destinationNames = config.destinations.map((d) => d.name);

  /** Runs the script on each message, in one round trip to the sandbox. */
  const translate = async (current: Translator, messages: TransformInput[]): Promise<Outcome[]> => {
    try {
      return await current.runMany(messages.map(({ id, raw, charset }) => ({ id, text: decodeAs(raw, charset) })));
    } catch (error) {
      // The translator is not there at all (closing, its script never loaded): every message gets it.
      const failure = error instanceof FerryError ? error : new FerryError('SANDBOX_FAILED', describeError(error), { cause: error });
      return messages.map(() => failure);
    }
  };

  /** Queues again the deliveries a replayed message still has queued, under the jobs the log names. */
  const requeueRecorded = async (id: string): Promise<void> => {
    for (const destination of destinationNames) {
      const queue = deliveryQueues.get(destination)!;
      for (let after = -1; ; ) {
        const page = store.queuedOutputs(id, destination, after, REPLAY_PAGE);
        const byJob = new Map<string, DeliveryWork[]>();
        for (const { output, job } of page) {
          const jobId = job ?? legacyDeliveryJobId(id, destination, output);
          byJob.set(jobId, [...(byJob.get(jobId) ?? []), { id, output }]);
        }
        // Adding a job that still exists is ignored; one that Redis lost comes back with what is left of it.
        if (byJob.size > 0) await queue.addBulk([...byJob].map(([jobId, work]) => ({ name: 'deliveries', data: deliveryJob(work), opts: { jobId } })));
        if (page.length < REPLAY_PAGE) break;
        after = page.at(-1)!.output;
      }
    }
  };

  return async (job: Job<InboundJob>): Promise<void> => {
    const ids = inboundWork(job.data);
    const messages = store.transformInputs(ids);
    if (messages.length < ids.length) {
      const found = new Set(messages.map((m) => m.id));
      logger.warn({ ids: ids.filter((id) => !found.has(id)) }, 'queued messages are not in the message log (purged?); skipped');
    }
    // Replayed after a crash between recording and queueing: queue what is still to deliver.
    for (const message of messages) if (message.transform === 'transformed') await requeueRecorded(message.id);
    const todo = messages.filter((m) => m.transform === undefined);
    if (todo.length === 0) return;

    const current = translator();
    const outcomes = current ? await translate(current, todo) : undefined;
    const records: Array<[string, TransformRecord]> = [];
    /** Per destination, the jobs being filled: [job id, its deliveries]. */
    const jobs = new Map<string, Array<[string, DeliveryWork[]]>>(destinationNames.map((name) => [name, []]));
    let retry: FerryError | undefined;

    todo.forEach((message, i) => {
      const { id } = message;
      let outputs: Buffer[];
      let result: TranslatorResult | undefined;
      if (!outcomes) {
        outputs = [message.raw]; // no script: the received bytes go on unchanged
      } else {
        const outcome = outcomes[i]!;
        if (outcome instanceof FerryError) {
          // The sandbox failed, not the script: this message is tried again with the job.
          if (!isPermanent(outcome)) return void (retry ??= outcome);
          const logs = Array.isArray(outcome.details?.['logs']) ? (outcome.details['logs'] as TranslatorResult['logs']) : [];
          logger.warn({ id, err: outcome }, `script error: ${describeError(outcome)}`);
          noteError(describeError(outcome));
          records.push([id, { status: 'error', error: describeError(outcome), logs: logLines(logs) }]);
          return;
        }
        result = outcome;
        if (result.outputs === null || result.outputs.length === 0) {
          records.push([id, { status: 'filtered', logs: logLines(result.logs) }]);
          return;
        }
        outputs = result.outputs.map((text) => Buffer.from(encodeHl7(text, message.charset)));
      }
      const jobOf: Record<string, string> = {};
      for (const destination of destinationNames) {
        const filling = jobs.get(destination)!;
        let current = filling.at(-1);
        if (!current || current[1].length >= DELIVERY_BATCH) {
          current = [deliveryJobId(job.id!, destination, filling.length), []];
          filling.push(current);
        }
        for (let output = 0; output < outputs.length; output++) current[1].push({ id, output });
        jobOf[destination] = current[0];
      }
      records.push([
        id,
        {
          status: 'transformed',
          outputs,
          ...(result?.meta ? { meta: result.meta } : {}),
          destinations: destinationNames,
          jobs: jobOf,
          logs: result ? logLines(result.logs) : '',
        },
      ]);
    });

    await inSlices(records, ([id, record]) => store.recordTransform(id, record));
    await Promise.all(
      [...jobs].map(([destination, filling]) =>
        filling.length === 0
          ? undefined
          : deliveryQueues.get(destination)!.addBulk(filling.map(([jobId, work]) => ({ name: 'deliveries', data: deliveryJob(work), opts: { jobId } }))),
      ),
    );
    if (retry) throw retry;
  };
};

const logLines = (logs: TranslatorResult['logs']): string => logs.map((line) => `${line.level} ${line.message}`).join('\n');
