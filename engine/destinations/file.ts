import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileDestinationConfig } from '../config.ts';
import { FerryError } from '../errors.ts';
import type { Delivery, Destination } from './destination.ts';

// One file per output, written atomically: a temp file in the same folder is written and
// fsync'ed, then renamed over the final name, then the folder is fsync'ed — a reader never sees
// half a file, and a file that exists survives power loss. Replays write the same name again.

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The file name for a delivery; outputs after the first get "-<n>" unless the pattern has {index}. */
export const fileNameFor = (pattern: string, delivery: Delivery): string => {
  const at = new Date(delivery.receivedAt);
  // MSH-10 comes from the sender: "." or ".." would name the folder itself or its parent.
  const controlId = (delivery.controlId ?? '').replace(/[^A-Za-z0-9._-]/g, '_');
  const values: Record<string, string> = {
    id: delivery.id,
    channel: delivery.channel,
    destination: delivery.destination,
    index: String(delivery.output),
    controlId: /^\.*$/.test(controlId) ? delivery.id : controlId,
    date: `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}`,
    time: `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}${pad(at.getUTCMilliseconds(), 3)}`,
  };
  const name = pattern.replace(/\{(\w+)\}/g, (_, token: string) => values[token] ?? '');
  if (delivery.output === 0 || pattern.includes('{index}')) return name;
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}-${delivery.output}${name.slice(dot)}` : `${name}-${delivery.output}`;
};

export const fileDestination = (config: FileDestinationConfig): Destination => {
  // The folder is created once, not per file; a failed write forgets that, so a folder deleted
  // while the engine runs is made again on the retry.
  let dirReady = false;
  return {
    async send(delivery) {
      const target = join(config.dir, fileNameFor(config.filename, delivery));
      const temp = join(config.dir, `.${delivery.id}.${randomBytes(4).toString('hex')}.tmp`);
      try {
        if (!dirReady) await mkdir(config.dir, { recursive: true });
        dirReady = true;
        const file = await open(temp, 'w');
        try {
          await file.writeFile(delivery.content);
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(temp, target);
        const dir = await open(config.dir, 'r');
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
      } catch (cause) {
        dirReady = false;
        // Best effort: when the folder itself is unusable there is no temp file, and rm fails too.
        await rm(temp, { force: true }).catch(() => undefined);
        throw new FerryError('FILE_WRITE_FAILED', `cannot write ${target}: ${(cause as Error).message}`, { cause });
      }
      return `wrote ${target}`;
    },
    async close() {},
  };
};
