// One MLLP measurement on a fresh engine (T1, T2, T3, T8; T5 and T6-under-load come with T1): Ferry
// started on `project`, the load process sending for a fixed time, files counted as they land.
// "Delivered" is what reached the output folder within the sending window; after the window the
// bench waits (up to `drainSeconds`) for the rest, so that CPU per message covers each message's
// whole path: from the first send until the last file, divided by the files.

import { rm } from 'node:fs/promises';
import path from 'node:path';
import { cpuByRole, totalRss, type ProcSample, type Role } from './proc-stats.ts';
import { watchDeliveries } from './deliveries.ts';
import { startFerry, writeProject } from './ferry.ts';
import { runLoad, type LoadResult } from './mllp.ts';
import type { Project } from './projects.ts';
import type { Redis } from 'ioredis';
import { commandCounts, connectRedis } from './redis-info.ts';

/** A file destination stuck this long with work left is not going to drain. */
const STALL_MS = 30_000;

export interface MllpMeasureOptions {
  dir: string;
  project: Project;
  connections: number;
  seconds: number;
  /** Open loop at this many messages per second (T3); closed loop without. */
  rate?: number;
  /** How long to wait for the backlog after the window; 0: do not wait. */
  drainSeconds: number;
  /** Extra node flags for the engine (the --profile switch's --cpu-prof). */
  engineArgs?: string[];
  /**
   * Called after the engine stopped (--profile reads its files then), with its last process sample
   * and the measured span (first send to last file) on the monotonic clock, in µs.
   */
  afterStop?: (samples: ProcSample[], span: [number, number]) => Promise<void>;
}

export interface MllpMeasure {
  load: LoadResult;
  /** Files that landed within the window, per second of it. */
  deliveredRate: number;
  /** Acknowledged but not delivered at the end of the window, in seconds of input. */
  backlogSeconds: number;
  drained: boolean;
  drainSeconds: number;
  /** CPU µs per delivered message, by process role, window + drain (an upper bound when not drained). */
  cpuUsPerMessage: Record<Role, number>;
  engineCpuUsPerMessage: number;
  /** Largest RSS of all engine processes together, sampled every second in the window. */
  peakRssBytes: number;
  /** Redis commands per delivered message (those inside Lua scripts included), and EVALSHA calls. */
  redisCommandsPerMessage: number;
  evalshaPerMessage: number;
}

export const measureMllp = async (options: MllpMeasureOptions): Promise<MllpMeasure> => {
  await writeProject(options.dir, options.project);
  const ferry = await startFerry(options.dir, { nodeArgs: options.engineArgs });
  const out = await watchDeliveries(path.join(options.dir, 'out'), '.hl7');
  let redis: Redis | undefined;
  let before: ProcSample[] = [];
  let peakRssBytes = 0;
  let sampler: NodeJS.Timeout | undefined;
  let last: ProcSample[] = [];
  let commandsBefore = { total: 0, evalsha: 0 };
  const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
  const span: [number, number] = [0, 0];
  try {
    redis = await connectRedis(options.dir);
    const connected = redis;
    const load = await runLoad({
      ports: [...ferry.mllpPorts.values()],
      connections: options.connections,
      seconds: options.seconds,
      rate: options.rate,
      prefix: 'M',
      onSending: async () => {
        span[0] = monotonicUs();
        commandsBefore = await commandCounts(connected);
        before = await ferry.sample();
        sampler = setInterval(() => void ferry.sample().then((s) => (peakRssBytes = Math.max(peakRssBytes, totalRss(s)))), 1000);
      },
    });
    clearInterval(sampler);
    const windowFiles = Math.max(0, (await out.exact()) - load.warmUps);
    const expected = load.acked + load.warmUps;
    const drainStarted = Date.now();
    const reached = options.drainSeconds > 0 ? await out.waitFor(expected, STALL_MS, options.drainSeconds * 1000) : windowFiles + load.warmUps;
    const drainSeconds = (Date.now() - drainStarted) / 1000;
    last = await ferry.sample();
    span[1] = monotonicUs();
    const cpu = cpuByRole(before, last);
    const commands = await commandCounts(redis);
    const delivered = Math.max(1, reached - load.warmUps);
    const perMessage = Object.fromEntries(Object.entries(cpu).map(([role, ms]) => [role, (ms * 1000) / delivered])) as Record<Role, number>;
    const inputRate = load.acked / (load.elapsedMs / 1000);
    return {
      load,
      deliveredRate: windowFiles / (load.elapsedMs / 1000),
      backlogSeconds: (load.acked - windowFiles) / inputRate,
      drained: reached >= expected,
      drainSeconds,
      cpuUsPerMessage: perMessage,
      engineCpuUsPerMessage: Object.values(perMessage).reduce((sum, us) => sum + us, 0),
      peakRssBytes,
      redisCommandsPerMessage: (commands.total - commandsBefore.total) / delivered,
      evalshaPerMessage: (commands.evalsha - commandsBefore.evalsha) / delivered,
    };
  } finally {
    clearInterval(sampler);
    out.close();
    redis?.disconnect();
    await ferry.stop();
    await options.afterStop?.(last, span);
    await rm(options.dir, { recursive: true, force: true });
  }
};

/** One line of what a measurement saw, for the run's log. */
export const describeMeasure = (m: MllpMeasure): string => {
  const cpu = Object.entries(m.cpuUsPerMessage)
    .filter(([, us]) => us > 0)
    .map(([role, us]) => `${role} ${us.toFixed(0)}`)
    .join(', ');
  return (
    `ack ${m.load.ackRate.toFixed(0)} msg/s (p50 ${m.load.p50.toFixed(2)} ms, p99 ${m.load.p99.toFixed(2)} ms), delivered ${m.deliveredRate.toFixed(0)} msg/s in the window, ` +
    `backlog at its end ${m.backlogSeconds.toFixed(1)} s of input${m.drained ? `, drained in ${m.drainSeconds.toFixed(0)} s` : m.drainSeconds >= 1 ? `, not drained after ${m.drainSeconds.toFixed(0)} s` : ''}; ` +
    `CPU µs/delivered message ${m.drained ? '' : '≤ '}${m.engineCpuUsPerMessage.toFixed(0)} (${cpu}); peak RSS ${(m.peakRssBytes / 2 ** 20).toFixed(0)} MB; Redis ${m.drained ? '' : '≤ '}${m.redisCommandsPerMessage.toFixed(1)} commands per message (${m.evalshaPerMessage.toFixed(1)} EVALSHA)`
  );
};
