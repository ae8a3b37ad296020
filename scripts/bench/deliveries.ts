// Counting what Ferry delivered: the files its file destinations put into a folder. The destination
// writes a dot-named temp file and renames it into place, so each delivery is one inotify event for
// its final name (cheap to follow at thousands a second); a readdir gives the exact count when it matters.

import { watch } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Deliveries {
  /** Files seen so far (by inotify: may lag, never overcounts). */
  seen(): number;
  /** Files in the folder now (readdir). */
  exact(): Promise<number>;
  /** Waits until `count` files exist; gives up when none arrives for `stallMs`. Returns the count reached. */
  waitFor(count: number, stallMs: number, deadlineMs?: number): Promise<number>;
  close(): void;
}

export const watchDeliveries = async (dir: string, suffix: string): Promise<Deliveries> => {
  await mkdir(dir, { recursive: true });
  const names = new Set<string>();
  const counts = (name: string): boolean => name.endsWith(suffix) && !name.startsWith('.');
  const watcher = watch(dir, (_event, name) => {
    if (typeof name === 'string' && counts(name)) names.add(name);
  });
  const exact = async (): Promise<number> => (await readdir(dir)).filter(counts).length;
  let listed = 0;
  return {
    seen: () => names.size,
    exact,
    async waitFor(count, stallMs, deadlineMs = Infinity) {
      const deadline = Date.now() + deadlineMs;
      let last = -1;
      let lastChange = Date.now();
      for (;;) {
        let now = Math.max(names.size, listed);
        // inotify drops events when its queue overflows: no news is checked with a readdir.
        if (now < count && now === last) now = Math.max(names.size, (listed = await exact()));
        if (now >= count) return now;
        if (now !== last) [last, lastChange] = [now, Date.now()];
        if (Date.now() - lastChange > stallMs || Date.now() > deadline) return now;
        await sleep(250);
      }
    },
    close: () => watcher.close(),
  };
};
