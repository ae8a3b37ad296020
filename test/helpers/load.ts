// Load for the fault tests and `npm run soak`: the project they run (an MLLP channel handing off to a
// second one), MLLP senders that behave like HL7 interfaces (one message at a time per connection,
// each resent until it gets AA), a watcher that records every file a destination delivers in the
// order it appears, and the check that ties both together — what was acknowledged, delivered, lost,
// delivered twice, and whether each connection's messages arrived in the order they were sent.

import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mllpClient } from '../../engine/clients/mllp.ts';
import { isFerryError } from '../../engine/errors.ts';
import { adtMessage } from './hl7.ts';
import { sendForAck } from './mllp.ts';
import { channelsYaml } from './project.ts';

/** An ADT^A01 whose MSH-10 is `controlId`; `sender` is MSH-3 (a load's messages share one). */
export const loadMessage = (controlId: string, sender = 'REGSYS'): string => adtMessage({ controlId, sender, visit: true });

/** File destinations in these tests name files so that both ids can be read back. */
export const DELIVERY_FILENAME = '{controlId}@{id}.hl7';

export interface LoadProjectOptions {
  /** More engine settings (see channelsYaml). */
  engine?: string;
  /** More destinations for channel adt, as YAML list items indented by six spaces. */
  adtDestinations?: string;
}

/**
 * channels.yaml for load with faults (the crash tests, `npm run soak`): channel adt takes MLLP on
 * `port`, delivers to a fifo file destination in out/archive and hands each message to channel
 * mirror, which delivers to out/mirror; both name files DELIVERY_FILENAME, so each delivery can be
 * checked, the hand-off included.
 */
export const loadProjectYaml = (port: number, options: LoadProjectOptions = {}): string =>
  channelsYaml({
    engine: options.engine,
    channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: archive, type: file, dir: ./out/archive, filename: "${DELIVERY_FILENAME}" }
      - { name: to-mirror, type: channel, channel: mirror }
${options.adtDestinations ?? ''}  - name: mirror
    source: { type: channel }
    destinations:
      - { name: copy, type: file, dir: ./out/mirror, filename: "${DELIVERY_FILENAME}" }
`,
  });

export interface Attempt {
  controlId: string;
  startedAt: number;
  endedAt: number;
  /** The ACK code (AA, AE, AR), or `none:<error code>` when no ACK came. */
  outcome: string;
}

export interface LoadOptions {
  port: number;
  host?: string;
  connections: number;
  /** Control ids are `<prefix><connection>-<seq>`, e.g. C2-000017; default "C". */
  prefix?: string;
  message?: (controlId: string) => string;
  /** How long a sender waits for an ACK before it gives up on that try; default 10 s. */
  ackTimeoutMs?: number;
  /** Wait before resending after AE or no ACK; default 100 ms. */
  retryDelayMs?: number;
  /** Least time from one message's first try to the next message's on a connection; default 0 (as fast as ACKs come). */
  intervalMs?: number;
}

export interface Load {
  /** Every try, in the order they ended. */
  readonly attempts: Attempt[];
  /** Distinct messages sent (a resent control id counts once). */
  sent(): number;
  /** Control ids that got AA, in the order they got it. */
  acked(): string[];
  /** Stops sending: the try in flight on each connection finishes, nothing is resent. */
  stop(): Promise<void>;
}

const SEQ_DIGITS = 6;

const parseControlId = (controlId: string): { connection: string; seq: number } | undefined => {
  const match = /^(.*\d)-(\d+)$/.exec(controlId);
  return match ? { connection: match[1]!, seq: Number(match[2]) } : undefined;
};

export const startLoad = (options: LoadOptions): Load => {
  const { port, host = '127.0.0.1', connections, prefix = 'C', message = loadMessage, ackTimeoutMs = 10_000, retryDelayMs = 100, intervalMs = 0 } = options;
  const attempts: Attempt[] = [];
  const acked: string[] = [];
  const sent = new Set<string>();
  let stopping = false;

  const sender = async (connection: number): Promise<void> => {
    const client = mllpClient({ host, port, ackTimeoutMs, connectTimeoutMs: 2_000 });
    try {
      for (let seq = 1; !stopping; seq++) {
        const controlId = `${prefix}${connection}-${String(seq).padStart(SEQ_DIGITS, '0')}`;
        sent.add(controlId);
        const firstTry = Date.now();
        for (;;) {
          const startedAt = Date.now();
          let outcome: string;
          try {
            const ack = await sendForAck(client, message(controlId));
            outcome = ack.controlId === controlId ? ack.code : `wrong MSA-2 ${ack.controlId}`;
          } catch (error) {
            outcome = `none:${isFerryError(error) ? error.code : String(error)}`;
          }
          attempts.push({ controlId, startedAt, endedAt: Date.now(), outcome });
          if (outcome === 'AA') {
            acked.push(controlId);
            break;
          }
          // AR means "never resend this"; anything else is resent, as a sender's interface would.
          if (outcome === 'AR' || stopping) break;
          await sleep(retryDelayMs);
        }
        const pause = firstTry + intervalMs - Date.now();
        if (pause > 0 && !stopping) await sleep(pause);
      }
    } finally {
      await client.close();
    }
  };
  const running = Array.from({ length: connections }, (_, i) => sender(i + 1));

  return {
    attempts,
    sent: () => sent.size,
    acked: () => [...acked],
    async stop() {
      stopping = true;
      await Promise.all(running);
    },
  };
};

export interface DeliveryWatch {
  /** Every delivered file name (`<controlId>@<id>.hl7`), in the order the files appeared; a rewrite appears again. */
  names(): string[];
  close(): void;
}

/**
 * Records deliveries into `dir` as they happen. The file destination writes a temp file and renames
 * it into place, so each delivery — a replay rewriting the same name included — is one inotify move
 * event, reported in order (no timestamps, whose granularity is too coarse to order files by).
 */
export const watchDeliveries = async (dir: string): Promise<DeliveryWatch> => {
  await mkdir(dir, { recursive: true });
  const names: string[] = [];
  const watcher: FSWatcher = watch(dir, (_event, name) => {
    if (typeof name === 'string' && name.endsWith('.hl7') && !name.startsWith('.')) names.push(name);
  });
  return { names: () => [...names], close: () => watcher.close() };
};

export interface DeliveryReport {
  sent: number;
  acked: number;
  /** Acknowledged messages delivered at least once. */
  delivered: number;
  /** Acknowledged and never delivered: must be empty. */
  lost: string[];
  /** Deliveries of a message id already delivered (replays after a crash: same id, same name). */
  duplicates: number;
  /** Extra message ids for one control id: the sender resent it after AE or no ACK. */
  resent: number;
  /** Control ids delivered under several ids although sent once: must be empty. */
  unexplained: string[];
  /** Deliveries that came before an earlier message of the same connection (fifo): must be empty. */
  outOfOrder: string[];
}

/** Checks what `names` (from watchDeliveries, in order) say about `load`. */
export const checkDeliveries = (load: Load, names: string[]): DeliveryReport => {
  const tries = new Map<string, number>();
  for (const attempt of load.attempts) tries.set(attempt.controlId, (tries.get(attempt.controlId) ?? 0) + 1);
  const seen = new Set<string>();
  const idsOf = new Map<string, Set<string>>();
  const lastSeq = new Map<string, { seq: number; name: string }>();
  let duplicates = 0;
  const outOfOrder: string[] = [];
  for (const name of names) {
    if (seen.has(name)) duplicates++;
    seen.add(name);
    const [controlId = '', id = ''] = name.slice(0, -'.hl7'.length).split('@');
    const ids = idsOf.get(controlId) ?? new Set<string>();
    ids.add(id);
    idsOf.set(controlId, ids);
    const parsed = parseControlId(controlId);
    if (!parsed) continue;
    const last = lastSeq.get(parsed.connection);
    if (last && parsed.seq < last.seq) outOfOrder.push(`${name} after ${last.name}`);
    else lastSeq.set(parsed.connection, { seq: parsed.seq, name });
  }
  const acked = load.acked();
  return {
    sent: load.sent(),
    acked: acked.length,
    delivered: acked.filter((controlId) => idsOf.has(controlId)).length,
    lost: acked.filter((controlId) => !idsOf.has(controlId)),
    duplicates,
    resent: [...idsOf.values()].reduce((n, ids) => n + ids.size - 1, 0),
    unexplained: [...idsOf].filter(([controlId, ids]) => ids.size > 1 && (tries.get(controlId) ?? 0) < ids.size).map(([controlId]) => controlId),
    outOfOrder,
  };
};

export const formatReport = (r: DeliveryReport): string =>
  `sent ${r.sent}, acknowledged ${r.acked}, delivered ${r.delivered}, lost ${r.lost.length}, ` +
  `duplicates ${r.duplicates} (same id), resent ${r.resent} (new id after AE/no ACK), out of order ${r.outOfOrder.length}`;

/** Whether every acknowledged message is among `names` yet. */
export const allDelivered = (load: Load, names: string[]): boolean => {
  const controlIds = new Set(names.map((name) => name.split('@')[0]));
  return load.acked().every((controlId) => controlIds.has(controlId));
};

/** The embedded redis-server's pid, from its pidfile under `<data>/redis`. */
export const redisPid = async (dataDir: string): Promise<number | undefined> => {
  const pid = Number.parseInt(await readFile(join(dataDir, 'redis', 'redis.pid'), 'utf8').catch(() => ''), 10);
  return pid > 0 ? pid : undefined;
};
