// Records of a whole job written a slice at a time, each slice one transaction issued in one turn of
// the event loop: a job of a thousand messages never holds the loop for one long transaction while
// senders wait for their ACKs (whose commits queue behind it).

/** Messages (or deliveries) recorded per transaction. */
export const RECORD_SLICE = 64;

/** Runs `write` on every item, RECORD_SLICE of them per turn, one slice after another. */
export const inSlices = async <T>(items: readonly T[], write: (item: T) => Promise<unknown>): Promise<void> => {
  for (let at = 0; at < items.length; at += RECORD_SLICE) await Promise.all(items.slice(at, at + RECORD_SLICE).map(write));
};
