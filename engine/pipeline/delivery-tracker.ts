// The deliveries a channel is working on, as operators see and move them. A destination retries a
// failing delivery in place (channel.ts `deliver`), so a `fifo` destination's delivery that keeps
// failing holds back everything queued behind it — for good, when the failure never clears and
// `retry.attempts` is 0. Such a delivery is listed here (what, how many tries, the last error, since
// when) and an operator can skip it: its signal aborts, the delivery loop stops waiting for the try
// or the pause under way, records the delivery as `error` (DELIVERY_SKIPPED) and releases the job.
import { setTimeout as sleep } from 'node:timers/promises';

/** A delivery that failed at least once and is being retried: in a fifo destination, the queue's head. */
export interface BlockedDelivery {
  destination: string;
  /** The message id. */
  id: string;
  /** Which of the message's outputs. */
  output: number;
  /** Tries made so far, in this engine run; all failed. */
  attempts: number;
  /** The last try's error, `CODE: message`. */
  error: string;
  /** When this engine started delivering it (ISO time). */
  since: string;
  /** When the next try starts (ISO time); null while a try is under way. */
  nextAttemptAt: string | null;
}

/** How a delivery ended: recorded sent, recorded error, skipped by an operator, or handed back to its queue. */
export type DeliveryOutcome = 'sent' | 'error' | 'skipped' | 'released';

export interface TrackedDelivery {
  /** Aborted when an operator skips the delivery; passed to the destination. */
  readonly signal: AbortSignal;
  /** Who skipped it, once someone has. */
  readonly skippedBy: string | undefined;
  /** Runs one try; rejects as soon as the delivery is skipped, without waiting for the try. */
  attempt<T>(work: Promise<T>): Promise<T>;
  /** A try failed with `error`; the next one is due at `nextAttemptAt` (epoch ms). */
  failed(attempts: number, error: string, nextAttemptAt: number): void;
  /** Waits until the next try; rejects as soon as the delivery is skipped or `stopping` aborts. */
  pause(ms: number, stopping: AbortSignal): Promise<void>;
  /** The delivery is over; a pending skip learns how it ended. */
  end(outcome: DeliveryOutcome): void;
}

/** `not-in-progress`: no such delivery is being worked on now. */
export type SkipOutcome = DeliveryOutcome | 'not-in-progress';

export interface DeliveryTracker {
  begin(destination: string, id: string, output: number): TrackedDelivery;
  /** Deliveries that failed at least once and are still being tried, oldest first. */
  blocked(): BlockedDelivery[];
  /** Skips a delivery in progress and resolves with how it ended: `skipped`, or what it reached first. */
  skip(destination: string, id: string, output: number, actor: string): Promise<SkipOutcome>;
}

interface Entry {
  destination: string;
  id: string;
  output: number;
  since: number;
  attempts: number;
  error: string | undefined;
  nextAttemptAt: number | null;
  controller: AbortController;
  skippedBy: string | undefined;
  ended: Promise<DeliveryOutcome>;
}

const keyOf = (destination: string, id: string, output: number): string => JSON.stringify([destination, id, output]);

const iso = (ms: number): string => new Date(ms).toISOString();

export const createDeliveryTracker = (): DeliveryTracker => {
  const entries = new Map<string, Entry>();

  return {
    begin(destination, id, output) {
      const key = keyOf(destination, id, output);
      const controller = new AbortController();
      let settle!: (outcome: DeliveryOutcome) => void;
      const entry: Entry = {
        destination,
        id,
        output,
        since: Date.now(),
        attempts: 0,
        error: undefined,
        nextAttemptAt: null,
        controller,
        skippedBy: undefined,
        ended: new Promise((resolve) => (settle = resolve)),
      };
      entries.set(key, entry);
      const { signal } = controller;
      return {
        signal,
        get skippedBy() {
          return entry.skippedBy;
        },
        attempt(work) {
          entry.nextAttemptAt = null;
          // The try goes on by itself after a skip; its result no longer matters.
          work.catch(() => undefined);
          if (signal.aborted) return Promise.reject(signal.reason);
          return new Promise((resolve, reject) => {
            const onSkip = (): void => reject(signal.reason);
            signal.addEventListener('abort', onSkip, { once: true });
            work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onSkip));
          });
        },
        failed(attempts, error, nextAttemptAt) {
          entry.attempts = attempts;
          entry.error = error;
          entry.nextAttemptAt = nextAttemptAt;
        },
        pause: (ms, stopping) => sleep(ms, undefined, { signal: AbortSignal.any([stopping, signal]) }),
        end(outcome) {
          if (entries.get(key) === entry) entries.delete(key);
          settle(outcome);
        },
      };
    },

    blocked: () =>
      [...entries.values()]
        .filter((e) => e.error !== undefined)
        .sort((a, b) => a.since - b.since)
        .map((e) => ({
          destination: e.destination,
          id: e.id,
          output: e.output,
          attempts: e.attempts,
          error: e.error!,
          since: iso(e.since),
          nextAttemptAt: e.nextAttemptAt === null ? null : iso(e.nextAttemptAt),
        })),

    async skip(destination, id, output, actor) {
      const entry = entries.get(keyOf(destination, id, output));
      if (!entry) return 'not-in-progress';
      entry.skippedBy ??= actor;
      entry.controller.abort(new Error(`skipped by ${entry.skippedBy}`));
      return entry.ended;
    },
  };
};
