// A destination's step: one delivery job (outputs in order) is sent, and the outcomes recorded, a
// run at a time: a destination that can send several outputs as one unit (sendMany: files fsynced
// together) gets them together, any other one at a time. A delivery that fails is retried in place
// (retryInPlace), so a `fifo` destination keeps its order; a `parallel` one hands the failing
// delivery to a job of its own and goes on with the rest. Outcomes are recorded a run at a time,
// in one transaction: a crash before that replays the run (at least once; receivers see the same
// message id and can drop the copy).
import { WaitingError, type Job, type Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { DestinationConfig } from '../config/contract.ts';
import type { Delivery, Destination, SendOutcome } from '../destinations/destination.ts';
import { FerryError, describeError, isFerryError, isPermanent } from '../errors.ts';
import { destinationStage } from '../message.ts';
import type { DeliveryInput, MessageStore } from '../store/contract.ts';
import { mayRetry, nextTryIn } from './backoff.ts';
import { inSlices } from './in-slices.ts';
import type { DeliveryOutcome, DeliveryTracker } from './delivery-tracker.ts';
import { deliveryJob, deliveryWork, type DeliveryJob } from './queues.ts';

/** Outputs handed to a destination's sendMany at once, and recorded in one transaction. */
const SEND_RUN = 500;

export interface DeliveryStepDeps {
  channel: string;
  destination: DestinationConfig;
  store: MessageStore;
  /** The destination, created at channel start. */
  send: () => Destination;
  /** Where a parallel destination's failing delivery goes on by itself. */
  queue: Queue<DeliveryJob>;
  tracker: DeliveryTracker;
  /** The channel's logger. */
  logger: Logger;
  noteError: (message: string) => void;
  /** Aborted when the channel stops: deliveries waiting to retry hand their job back. */
  stopping: () => AbortSignal;
}

/** How one delivery of a run went: sent, failed (to be retried or recorded), or skipped (already recorded). */
type RunOutcome = SendOutcome | { ok: true; skipped: true };

const failure = (error: unknown): SendOutcome => ({ ok: false, error });

export const deliveryStep = (deps: DeliveryStepDeps) => {
  const { channel, destination, store, tracker, logger, noteError } = deps;
  const { name } = destination;

  const toDelivery = (input: DeliveryInput, signal?: AbortSignal): Delivery => ({
    id: input.id,
    channel,
    destination: name,
    output: input.output,
    content: input.content,
    ...(input.meta ? { meta: input.meta } : {}),
    controlId: input.controlId,
    charset: input.charset,
    receivedAt: input.receivedAt,
    ...(signal ? { signal } : {}),
  });

  const recordSent = (sent: Array<{ input: DeliveryInput; response: string; attempts: number }>): Promise<void> =>
    inSlices(sent, ({ input, response, attempts }) => store.recordDelivery(input.id, destinationStage(name, input.output), { status: 'sent', attempts, response }));

  /** Records a delivery as failed for good: given up, refused, or skipped by an operator. */
  const recordFailed = async (input: DeliveryInput, attempts: number, final: string): Promise<void> => {
    logger.warn({ id: input.id, destination: name, attempt: attempts }, `delivery failed: ${final}`);
    noteError(`${name}: ${final}`);
    await store.recordDelivery(input.id, destinationStage(name, input.output), { status: 'error', attempts, error: final });
  };

  /**
   * Tries one delivery until it is sent, refused, out of tries or skipped, waiting between tries per
   * the destination's retry policy. `tried`/`first`: tries already made and the last one's error
   * (its text, when the tries were made by the job this one was split from).
   */
  const retryInPlace = async (input: DeliveryInput, job: Job<DeliveryJob>, token: string | undefined, tried: number, first: unknown): Promise<void> => {
    const send = deps.send();
    const stage = destinationStage(name, input.output);
    const tracked = tracker.begin(name, input.id, input.output);
    let outcome: DeliveryOutcome = 'released';
    let lastReason: string | undefined;
    const skip = async (attempts: number): Promise<void> => {
      const last = lastReason === undefined ? '' : `; last error: ${lastReason}`;
      const reason = `skipped by ${tracked.skippedBy} after ${attempts} attempt${attempts === 1 ? '' : 's'}${last}`;
      await recordFailed(input, attempts, describeError(new FerryError('DELIVERY_SKIPPED', reason)));
      outcome = 'skipped';
    };
    try {
      let error = first;
      for (let attempt = tried; ; ) {
        if (attempt > 0) {
          const reason = describeError(error);
          lastReason = reason;
          if (isPermanent(error) || !mayRetry(destination.retry, attempt)) {
            await recordFailed(input, attempt, isPermanent(error) ? reason : `DESTINATION_GAVE_UP: after ${attempt} attempts: ${reason}`);
            outcome = 'error';
            return;
          }
          const delay = nextTryIn(destination.retry, attempt, isFerryError(error) ? error.retryAfterMs : undefined);
          logger.info({ id: input.id, destination: name, attempt, delay }, `delivery failed, retrying: ${reason}`);
          await store.recordDelivery(input.id, stage, { status: 'queued', attempts: attempt, error: reason });
          tracked.failed(attempt, reason, Date.now() + delay);
          try {
            await tracked.pause(delay, deps.stopping());
          } catch {
            if (tracked.skippedBy !== undefined) return await skip(attempt);
            // Stopping: hand the job back to the front of its queue; it resumes on the next start
            // (what it already sent is recorded, and skipped then).
            await job.moveToWait(token);
            throw new WaitingError();
          }
        }
        attempt++;
        try {
          const response = await tracked.attempt(send.send(toDelivery(input, tracked.signal)));
          await recordSent([{ input, response, attempts: attempt }]);
          outcome = 'sent';
          return;
        } catch (thrown) {
          if (tracked.skippedBy !== undefined) return await skip(attempt);
          error = thrown;
        }
      }
    } finally {
      tracked.end(outcome);
    }
  };

  /** Sends a run of deliveries together; the outcomes of those it tried, in order, up to the first failure. */
  const sendRun = async (send: Destination, run: DeliveryInput[]): Promise<RunOutcome[]> => {
    if (!send.sendMany) {
      // One at a time, each skippable by an operator from its first try; the first failure ends the run.
      const outcomes: RunOutcome[] = [];
      for (const input of run) {
        const outcome = await tryOnce(send, input);
        outcomes.push(outcome);
        if (!outcome.ok) break;
      }
      return outcomes;
    }
    try {
      return await send.sendMany(run.map((input) => toDelivery(input)));
    } catch (error) {
      return [failure(error)];
    }
  };

  /** One try, tracked so that an operator can skip it while it hangs. */
  const tryOnce = async (send: Destination, input: DeliveryInput): Promise<RunOutcome> => {
    const tracked = tracker.begin(name, input.id, input.output);
    try {
      const response = await tracked.attempt(send.send(toDelivery(input, tracked.signal)));
      tracked.end('sent');
      return { ok: true, response };
    } catch (error) {
      if (tracked.skippedBy === undefined) {
        tracked.end('released');
        return failure(error);
      }
      const reason = describeError(new FerryError('DELIVERY_SKIPPED', `skipped by ${tracked.skippedBy} after 1 attempt`));
      await recordFailed(input, 1, reason);
      tracked.end('skipped');
      return { ok: true, skipped: true };
    }
  };

  return async (job: Job<DeliveryJob>, token: string | undefined): Promise<void> => {
    const work = deliveryWork(job.data);
    const { tried = 0, lastError } = 'items' in job.data ? job.data : {};
    const inputs = store.deliveryInputs(name, work);
    if (inputs.length < work.length) logger.warn({ destination: name, missing: work.length - inputs.length }, 'outputs are not in the message log (purged?); skipped');
    const pending = inputs.filter((input) => input.status !== 'sent');
    const send = deps.send();
    for (let at = 0; at < pending.length; ) {
      // A job split off for one failing delivery resumes its retries where they were.
      if (at === 0 && tried > 0) {
        await retryInPlace(pending[0]!, job, token, tried, lastError);
        at += 1;
        continue;
      }
      const run = pending.slice(at, at + SEND_RUN);
      const outcomes = await sendRun(send, run);
      const sent = outcomes.flatMap((outcome, i) => (outcome.ok && !('skipped' in outcome) ? [{ input: run[i]!, response: outcome.response, attempts: 1 }] : []));
      await recordSent(sent);
      const ok = outcomes.findIndex((outcome) => !outcome.ok);
      at += ok === -1 ? outcomes.length : ok;
      if (ok === -1) continue;
      const failed = pending[at]!;
      const error = (outcomes[ok] as { error: unknown }).error;
      at += 1;
      if (destination.order === 'parallel' && !isPermanent(error) && at < pending.length) {
        // Order does not matter here: the failing delivery waits for its retries in a job of its own.
        await deps.queue.add('deliveries', { ...deliveryJob([failed]), tried: 1, lastError: describeError(error) }, { jobId: `${job.id}.retry.${failed.id}.${failed.output}` });
        await store.recordDelivery(failed.id, destinationStage(name, failed.output), { status: 'queued', attempts: 1, error: describeError(error) });
        continue;
      }
      await retryInPlace(failed, job, token, 1, error);
    }
  };
};
