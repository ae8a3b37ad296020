// Rate-limited logging of an event a peer can repeat at will (a refused connection, an ignored frame):
// the first event of each interval is logged in full; the rest are only counted, and summed up in one
// line when the interval ends. A flood leaves two lines per interval instead of one per event (which
// would let any client fill the disk with our logs), and still says how big it was and who sent it.

/** The events of an interval that were not logged one by one. */
export interface Suppressed {
  count: number;
  /** The distinct keys they were admitted with (peer addresses, say): at most MAX_KEYS of them. */
  keys: string[];
}

// Enough to name the few peers a flood usually comes from, without a line that grows with the flood.
const MAX_KEYS = 10;

export interface LogThrottle {
  /** True: log this event in full, it opens an interval. False: it was counted for the interval's summary. */
  admit(key?: string): boolean;
  /** Sums up the interval now rather than at its end (at stop, so the count is not lost). */
  flush(): void;
}

export const logThrottle = (intervalMs: number, summarize: (suppressed: Suppressed) => void): LogThrottle => {
  let interval: NodeJS.Timeout | undefined;
  let count = 0;
  const keys = new Set<string>();

  const flush = (): void => {
    clearTimeout(interval);
    interval = undefined;
    if (count > 0) summarize({ count, keys: [...keys] });
    count = 0;
    keys.clear();
  };

  return {
    admit(key) {
      if (!interval) {
        // unref: a summary still to come never keeps the process alive.
        interval = setTimeout(flush, intervalMs).unref();
        return true;
      }
      count += 1;
      if (key !== undefined && keys.size < MAX_KEYS) keys.add(key);
      return false;
    },
    flush,
  };
};
