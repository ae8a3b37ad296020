// One job at a time, in the order handed in: each starts once the one before it has settled,
// whether it succeeded or failed. For what cannot overlap — one isolate or sandbox process runs one
// message, an MLLP connection matches a reply only to the frame sent last, a channel's start and
// stop, a file reloaded while it is being written.

export interface Serial {
  /** Runs `work` once every job handed in before it has settled; settles as `work` does. */
  run<T>(work: () => T | Promise<T>): Promise<T>;
  /** Resolves once every job handed in so far has settled; never rejects. */
  idle(): Promise<void>;
}

export const createSerial = (): Serial => {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    run(work) {
      const result = tail.then(work);
      tail = result.catch(() => undefined);
      return result;
    },
    idle: () => tail.then(() => undefined),
  };
};
