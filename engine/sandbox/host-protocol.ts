// What the engine (process-sandbox.ts) and a sandbox host process (host.ts) say to each other over
// IPC: one request at a time, each answered with its `seq`. Kept apart from host.ts, whose import
// starts a host, and from process-sandbox.ts, which the host must not load (it pulls in esbuild).
import type { SandboxLimits, SandboxResult } from './isolate.ts';
import type { ScriptInput } from './prelude.ts';
import type { CompiledScript } from './transpile.ts';

/** What crosses to the host of a compiled script: data only; `locate` is rebuilt from the map. */
export type ScriptBundle = Pick<CompiledScript, 'file' | 'name' | 'version' | 'code' | 'map'>;

export type HostRequest =
  /** `memoryCapBytes`: the most the whole host process may use (RSS) before it ends itself. */
  | { op: 'init'; seq: number; channel: string; limits: SandboxLimits; prelude: string; memoryCapBytes: number }
  | { op: 'load'; seq: number; script: ScriptBundle }
  | { op: 'run'; seq: number; input: ScriptInput }
  | { op: 'runMany'; seq: number; inputs: ScriptInput[] };

/** A FerryError as data; the engine rebuilds the FerryError. */
export interface HostError {
  code: string;
  message: string;
  permanent: boolean;
  details?: Record<string, unknown>;
}

/** One message's answer within a runMany reply. */
export type HostItem = { ok: true; result: SandboxResult } | { ok: false; error: HostError };

export type HostReply =
  | { seq: number; ok: true; result?: SandboxResult; results?: HostItem[] }
  | { seq: number; ok: false; error: HostError };

/** The start of the line a host writes to stderr before it ends itself for using too much memory. */
export const OVER_MEMORY = 'ferry-sandbox: over memory';
