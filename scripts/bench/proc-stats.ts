// What the engine's processes cost, read from Linux /proc: CPU (utime + stime) and memory (VmRSS) of a
// process and of everything it started — the engine's main process, its sandbox hosts, its esbuild
// service and its embedded redis-server (which runs in its own process group, but is still a child).

import { execFileSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';

/** What a process is to the bench, from its command line. */
export type Role = 'engine' | 'sandbox' | 'redis' | 'esbuild' | 'other';

export interface ProcSample {
  pid: number;
  role: Role;
  cpuMs: number;
  rssBytes: number;
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export const commandLine = async (pid: number): Promise<string> =>
  (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ').trim();

const roleOf = (command: string, isRoot: boolean): Role => {
  if (command.includes('redis-server')) return 'redis';
  if (command.includes('ferry-sandbox')) return 'sandbox';
  if (command.includes('esbuild')) return 'esbuild';
  return isRoot ? 'engine' : 'other';
};

/** CPU ms used so far (all threads), NaN when the process is gone. */
export const cpuMs = async (pid: number): Promise<number> => {
  // utime and stime are fields 14 and 15, counted after the parenthesised (space-holding) name.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return stat ? ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS : Number.NaN;
};

/** Resident memory in bytes (VmRSS), 0 when the process is gone. */
export const rssBytes = async (pid: number): Promise<number> => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
};

/** `root` and all its descendants. */
export const processTree = async (root: number): Promise<number[]> => {
  const pids = [root];
  for (let i = 0; i < pids.length; i++) {
    const threads = await readdir(`/proc/${pids[i]}/task`).catch((): string[] => []);
    const lists = await Promise.all(threads.map((tid) => readFile(`/proc/${pids[i]}/task/${tid}/children`, 'utf8').catch(() => '')));
    pids.push(...lists.join(' ').split(/\s+/).filter(Boolean).map(Number));
  }
  return pids;
};

/** CPU and RSS of every process in `root`'s tree, now. */
export const sampleTree = async (root: number): Promise<ProcSample[]> => {
  const pids = await processTree(root);
  const samples = await Promise.all(
    pids.map(async (pid) => ({ pid, role: roleOf(await commandLine(pid), pid === root), cpuMs: await cpuMs(pid), rssBytes: await rssBytes(pid) })),
  );
  return samples.filter((s) => !Number.isNaN(s.cpuMs));
};

export const totalRss = (samples: ProcSample[]): number => samples.reduce((sum, s) => sum + s.rssBytes, 0);

/**
 * CPU ms each role used between two samples. A process started in between counts from zero; one
 * that ended in between (a sandbox host that crashed) is lost, which the bench would show as a drop.
 */
export const cpuByRole = (before: ProcSample[], after: ProcSample[]): Record<Role, number> => {
  const start = new Map(before.map((s) => [s.pid, s.cpuMs]));
  const used: Record<Role, number> = { engine: 0, sandbox: 0, redis: 0, esbuild: 0, other: 0 };
  for (const s of after) used[s.role] += s.cpuMs - (start.get(s.pid) ?? 0);
  return used;
};
