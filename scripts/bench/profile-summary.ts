// `--profile`: where a process's CPU time went, by module, from a V8 .cpuprofile (node --cpu-prof).
// Each sample is charged to the innermost frame that belongs to a module — a package in
// node_modules (by package name) or a project file (engine/…) — so Node's own JavaScript
// (node:net, node:fs…) and native code (better-sqlite3's C++, a socket write) count for the module
// that called them: "file destination 12%" includes its fs calls. Samples with no such frame on
// the stack are charged to the outermost frame: Node's file (node:stream_base_commons for socket
// reads, node:task_queues…) or V8's own entries: (garbage collector), (program).

import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  gcMs: number;
  /** Busy time per module, largest first. */
  modules: Array<{ name: string; ms: number }>;
}

/** The module a frame belongs to, or undefined for Node's internals and native frames. */
const moduleOf = (url: string): string | undefined => {
  const packaged = /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (packaged) return packaged[1];
  const project = /\/((?:engine|scripts|channels)\/.*)$/.exec(url.replace(/^file:\/\//, ''));
  return project?.[1];
};

/** Where a sample goes that has no module on its stack: Node's file at the top of the stack, or V8's label. */
const fallbackOf = (frame: ProfileNode['callFrame']): string =>
  frame.url ? frame.url.replace(/^node:internal\//, 'node:') : frame.functionName.startsWith('(') ? frame.functionName : `(native ${frame.functionName || 'code'})`;

/**
 * `span`: only samples taken within it count ([from, to] in µs of the monotonic clock, which V8's
 * profile timestamps and process.hrtime share on Linux), e.g. the measured load without the start.
 */
export const summarizeProfile = async (file: string, span: [number, number] = [0, Infinity]): Promise<ProfileSummary> => {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  // The charge of each node, resolved once: its own module, else its parent's; the outermost frames' fallback.
  const charge = new Map<number, string>();
  const chargeOf = (id: number): string => {
    const known = charge.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id)!;
    const up = parent.get(id);
    const underRoot = up === undefined || byId.get(up)!.callFrame.functionName === '(root)';
    const result = moduleOf(node.callFrame.url) ?? (underRoot ? fallbackOf(node.callFrame) : chargeOf(up));
    charge.set(id, result);
    return result;
  };
  const ms = new Map<string, number>();
  let totalMs = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < span[0] || at > span[1]) return;
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    totalMs += delta;
    const name = chargeOf(id);
    ms.set(name, (ms.get(name) ?? 0) + delta);
  });
  const idleMs = ms.get('(idle)') ?? 0;
  ms.delete('(idle)');
  return {
    totalMs,
    idleMs,
    gcMs: ms.get('(garbage collector)') ?? 0,
    modules: [...ms].map(([name, time]) => ({ name, ms: time })).sort((a, b) => b.ms - a.ms),
  };
};

/** The summary as lines: share of busy time per module, then idle and GC. */
export const formatProfile = (label: string, summary: ProfileSummary, top = 15): string => {
  const busy = summary.totalMs - summary.idleMs;
  if (busy < 0.01 * summary.totalMs) return `${label}: ${(summary.totalMs / 1000).toFixed(1)} s profiled, idle throughout`;
  const pct = (ms: number): string => `${((100 * ms) / busy).toFixed(1).padStart(5)}%`;
  return [
    `${label}: ${(summary.totalMs / 1000).toFixed(1)} s profiled, idle ${((100 * summary.idleMs) / summary.totalMs).toFixed(1)}%, busy ${(busy / 1000).toFixed(1)} s; share of busy time:`,
    ...summary.modules.slice(0, top).map((m) => `  ${pct(m.ms)}  ${m.name}`),
    `  (garbage collection: ${pct(summary.gcMs).trim()} of busy time)`,
  ].join('\n');
};
