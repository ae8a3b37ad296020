// Ferry as users run it: `node --no-node-snapshot engine/bin/ferry.js start -c channels.yaml` in a
// project folder, a process of its own. Up means: the CLI printed its summary (the ports it bound)
// and /healthz answers with every channel running.

import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from '../../test/helpers/temp.ts';
import { atCleanup, spawnChild } from './children.ts';
import { commandLine, processTree, sampleTree, type ProcSample } from './proc-stats.ts';

export const ferryBin = fileURLToPath(new URL('../../engine/bin/ferry.js', import.meta.url));

/** Writes `files` (paths relative to `dir`) into a new project folder. */
export const writeProject = async (dir: string, files: Record<string, string>): Promise<void> => {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
};

/** Runs a `ferry` command to completion in `cwd`; its stdout. */
export const runFerryCommand = async (cwd: string, args: string[]): Promise<string> => {
  const command = spawnChild(process.execPath, ['--no-node-snapshot', ferryBin, ...args], { cwd });
  let stdout = '';
  let stderr = '';
  command.child.stdout!.on('data', (chunk) => (stdout += chunk));
  command.child.stderr!.on('data', (chunk) => (stderr += chunk));
  const code = await command.closed;
  if (code !== 0) throw new Error(`ferry ${args.join(' ')} exited with ${code}: ${stderr}`);
  return stdout;
};

export interface Ferry {
  pid: number;
  dir: string;
  adminUrl: string;
  /** Each MLLP channel's bound port, by channel name. */
  mllpPorts: Map<string, number>;
  /** The HTTPS listener's base URL, when there is one. */
  httpsUrl?: string;
  /** CPU and RSS of the engine and every process it started. */
  sample(): Promise<ProcSample[]>;
  api<T>(urlPath: string): Promise<T>;
  /** SIGTERM and wait (SIGKILL after a minute); then ends whatever of its tree is left (a detached redis-server). */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra node flags for the engine's main process, e.g. --cpu-prof (Node refuses it in NODE_OPTIONS). */
  nodeArgs?: string[];
}

export const startFerry = async (dir: string, options: StartOptions = {}): Promise<Ferry> => {
  const logFd = openSync(path.join(dir, 'engine.log'), 'a');
  const engine = spawnChild(process.execPath, ['--no-node-snapshot', ...(options.nodeArgs ?? []), ferryBin, 'start', '-c', 'channels.yaml', '--log', 'json'], {
    cwd: dir,
    stdio: ['ignore', logFd, 'pipe'],
  });
  closeSync(logFd);
  let summary = '';
  engine.child.stderr!.on('data', (chunk) => (summary += chunk));

  // Its tree as last seen, with command lines: what to end if the engine dies without stopping them.
  let known = new Map<number, string>();
  const remember = async (): Promise<void> => {
    const pids = await processTree(engine.pid);
    for (const pid of pids) if (!known.has(pid)) known.set(pid, await commandLine(pid));
  };
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (engine.running()) await remember();
      engine.child.kill('SIGTERM');
      const late = setTimeout(() => engine.child.kill('SIGKILL'), 60_000);
      await engine.closed;
      clearTimeout(late);
      for (const [pid, command] of known) {
        if (pid !== engine.pid && command && (await commandLine(pid)) === command) process.kill(pid, 'SIGKILL');
      }
      known = new Map();
    })());
  const forget = atCleanup(stop);

  const failed = (why: string): Error => new Error(`ferry in ${dir} ${why}:\n${summary.slice(-3000)}${tailOf(dir)}`);
  const adminUrl = await eventually(
    async () => {
      if (!engine.running()) throw failed(`exited with ${engine.child.exitCode ?? engine.child.signalCode}`);
      return /admin API on (http\S+)/.exec(summary)?.[1];
    },
    120_000,
    'ferry to start',
  ).catch(async (error: unknown) => {
    await stop();
    forget();
    throw error;
  });
  const api = async <T>(urlPath: string): Promise<T> => {
    const response = await fetch(adminUrl + urlPath);
    if (!response.ok) throw new Error(`GET ${urlPath}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };
  await eventually(
    async () => {
      const health = await api<{ status: string; channels: Record<string, string> }>('/healthz').catch(() => undefined);
      return health?.status === 'ok' && Object.values(health.channels).every((state) => state === 'running') ? true : undefined;
    },
    60_000,
    'ferry to report every channel running',
  );
  await remember();
  const mllpPorts = new Map([...summary.matchAll(/channel (\S+) listening on MLLP port (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  const httpsUrl = /receiving (?:pushes )?on (https?:\/\/[^/\s]+)/.exec(summary)?.[1];
  return {
    pid: engine.pid,
    dir,
    adminUrl,
    mllpPorts,
    httpsUrl,
    sample: async () => {
      await remember();
      return sampleTree(engine.pid);
    },
    api,
    stop: async () => {
      await stop();
      forget();
    },
  };
};

/** The engine's last log lines, for an error message. */
const tailOf = (dir: string): string => {
  try {
    return `\nengine.log (end):\n${readFileSync(path.join(dir, 'engine.log'), 'utf8').slice(-2000)}`;
  } catch {
    return '';
  }
};
