// Group commit: calls made in the same turn of the event loop are flushed together as one batch
// (one SQLite transaction, one Redis round trip) and each caller's promise settles with its own
// result. This is what lets every message wait for a durable commit without paying a full commit
// each: under load, batches grow by themselves; when idle, a single call flushes at once.

export interface Batcher<T, R> {
  add(item: T): Promise<R>;
  /** Resolves once everything added so far has been flushed. */
  drain(): Promise<void>;
}

interface Pending<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

/**
 * `flush` gets the items in arrival order and returns one result per item (or a per-item Error to
 * reject just that caller). A thrown error rejects the whole batch.
 */
export const createBatcher = <T, R>(
  flush: (items: T[]) => Promise<Array<R | Error>> | Array<R | Error>,
  maxBatch = 500,
): Batcher<T, R> => {
  let queue: Pending<T, R>[] = [];
  let scheduled = false;
  let inFlight: Promise<void> = Promise.resolve();

  const run = async (batch: Pending<T, R>[]): Promise<void> => {
    try {
      const results = await flush(batch.map((p) => p.item));
      batch.forEach((p, i) => {
        const result = results[i];
        if (result instanceof Error) p.reject(result);
        else p.resolve(result as R);
      });
    } catch (error) {
      for (const p of batch) p.reject(error);
    }
  };

  const flushQueued = (): void => {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(maxBatch);
      // Batches flush one after another so their effects keep arrival order.
      inFlight = inFlight.then(() => run(batch));
    }
  };

  return {
    add(item) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flushQueued);
        }
      });
    },
    async drain() {
      if (scheduled) flushQueued();
      await inFlight;
    },
  };
};
