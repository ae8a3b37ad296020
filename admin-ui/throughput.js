// Messages received per minute, per channel, over a sliding window. Fed from two places: the message
// log once at load (so the chart has history on opening), then the `received` counter of each live
// channel event, whose increase is attributed to the minute it arrived in. Minutes the UI knows
// nothing about (before it was opened, or before a history page that was cut short) are null, so the
// chart draws them as unknown rather than as zero traffic. Pure: no DOM, no timers.

const MINUTE = 60_000;
const minuteOf = (ms) => Math.floor(ms / MINUTE);

export const createThroughput = ({ minutes = 15 } = {}) => {
  const channels = new Map();

  const entry = (name) => {
    let e = channels.get(name);
    if (!e) {
      e = { buckets: new Map(), last: undefined, knownFrom: Infinity };
      channels.set(name, e);
    }
    return e;
  };

  const add = (e, minute, n) => e.buckets.set(minute, (e.buckets.get(minute) ?? 0) + n);

  return {
    /**
     * History from the message log: the receive times (ms) of the channel's messages since `since`.
     * `complete` is false when the log had more than one page: then the oldest minute seen is partial
     * and everything before it unknown.
     */
    seed(name, times, { since, complete }) {
      const e = entry(name);
      const oldest = times.length ? Math.min(...times) : since;
      const from = complete ? minuteOf(since) : minuteOf(oldest) + 1;
      for (const t of times) if (minuteOf(t) >= from) add(e, minuteOf(t), 1);
      e.knownFrom = Math.min(e.knownFrom, from);
    },

    /** The channel's total received count as reported at time `at`; the first report is the baseline. */
    observe(name, received, at) {
      const e = entry(name);
      if (typeof received !== 'number') return;
      // A lower count means old messages were removed from the log (retention): a new baseline, not traffic.
      if (e.last !== undefined && received > e.last) add(e, minuteOf(at), received - e.last);
      e.last = received;
      e.knownFrom = Math.min(e.knownFrom, minuteOf(at));
    },

    /** `minutes` buckets, oldest first, the last one being the current (partial) minute. */
    series(name, now) {
      const e = channels.get(name);
      const current = minuteOf(now);
      for (const minute of e?.buckets.keys() ?? []) if (minute <= current - minutes) e.buckets.delete(minute);
      const out = [];
      for (let minute = current - minutes + 1; minute <= current; minute++) {
        const known = e !== undefined && minute >= e.knownFrom;
        out.push({ start: minute * MINUTE, count: known ? (e.buckets.get(minute) ?? 0) : null });
      }
      return out;
    },

    forget(name) {
      channels.delete(name);
    },
  };
};
