// What the engine accepts back from a channel's sandbox, checked in the engine process before any of
// it is recorded or sent. The prelude shapes and checks a script's outputs inside the sandbox already,
// but it shares a context with the script (and the sandbox runs in another process), so the engine
// does not take its word: every output, ctx.deliver meta and log line is checked again here, with the
// same rules (wire/output-meta.ts, wire/headers.ts) and limits. Anything off errors the message with
// SCRIPT_BAD_RESULT naming what was refused.
import { FerryError } from '../errors.ts';
import type { OutputMeta } from '../message.ts';
import { readOutputMeta, unfollowedOption, type DeliverTargets } from '../wire/output-meta.ts';
import type { SandboxResult } from './isolate.ts';
import type { ScriptLog, ScriptLogLevel } from './prelude.ts';

/** Log lines a message keeps (one more says how many were dropped), and characters per line. */
export const MAX_LOG_LINES = 1000;
export const MAX_LINE_CHARS = 10_000;
/** What the prelude appends to a clipped line: `… (12345 more characters)`. */
const CLIP_NOTE_CHARS = 64;

const LOG_LEVELS: readonly ScriptLogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface ResultRules {
  /** The script as users see it: `channels/adt.ts`. */
  script: string;
  /** Cap on the UTF-8 size of all outputs of one message. */
  outputBytes: number;
  /** Cap on the number of outputs of one message (scriptLimits.maxOutputs). */
  maxOutputs: number;
  /** The channel's destinations and what each follows of ctx.deliver's options; absent = not checked. */
  deliverTo?: DeliverTargets;
}

const readLogs = (logs: unknown): ScriptLog[] | string => {
  if (!Array.isArray(logs) || logs.length > MAX_LOG_LINES + 1) return 'the log lines could not be read back';
  const checked: ScriptLog[] = [];
  for (const line of logs as unknown[]) {
    const { level, message } = (typeof line === 'object' && line !== null ? line : {}) as Record<string, unknown>;
    if (!LOG_LEVELS.includes(level as ScriptLogLevel) || typeof message !== 'string' || message.length > MAX_LINE_CHARS + CLIP_NOTE_CHARS) {
      return 'the log lines could not be read back';
    }
    checked.push({ level: level as ScriptLogLevel, message });
  }
  return checked;
};

const readOutputs = (outputs: unknown, outputBytes: number): string[] | null | string => {
  if (outputs === null) return null;
  if (!Array.isArray(outputs) || !outputs.every((output) => typeof output === 'string')) return 'the result could not be turned into strings';
  let bytes = 0;
  for (const output of outputs as string[]) bytes += Buffer.byteLength(output);
  if (bytes > outputBytes) return `the outputs total ${bytes} bytes, more than the ${outputBytes}-byte limit per message`;
  return outputs as string[];
};

/** Plain objects again: the rules build them without a prototype (see intrinsics.ts). */
const plain = (meta: OutputMeta): OutputMeta => ({ ...meta, ...(meta.headers ? { headers: { ...meta.headers } } : {}) });

const readMeta = (meta: unknown, outputs: number, rules: ResultRules): Array<OutputMeta | null> | string => {
  if (!Array.isArray(meta) || meta.length !== outputs) return 'the ctx.deliver options could not be read back';
  const checked: Array<OutputMeta | null> = [];
  for (let i = 0; i < meta.length; i++) {
    const given: unknown = meta[i];
    if (given === null) {
      checked.push(null);
      continue;
    }
    const read = readOutputMeta(given);
    const problem = typeof read === 'string' ? read : rules.deliverTo && unfollowedOption(read, rules.deliverTo);
    if (problem) return `output ${i}: ${problem}`;
    checked.push(plain(read as OutputMeta));
  }
  return checked;
};

/** The error for a message with more outputs than its channel allows (the prelude's outcome, or this file's own check). */
export const tooManyOutputs = (script: string, maxOutputs: number, logs: ScriptLog[]): FerryError =>
  new FerryError(
    'SCRIPT_TOO_MANY_OUTPUTS',
    `${script}: more than ${maxOutputs} outputs for one message (returned and ctx.deliver together); nothing was queued. The limit is scriptLimits.maxOutputs in channels.yaml`,
    { details: { file: script, maxOutputs, logs } },
  );

/** `value` as a SandboxResult that keeps the rules, or a SCRIPT_BAD_RESULT FerryError thrown. */
export const checkResult = (value: unknown, rules: ResultRules): SandboxResult => {
  const refuse = (problem: string, logs?: ScriptLog[]): FerryError =>
    new FerryError('SCRIPT_BAD_RESULT', `${rules.script}: ${problem}`, { details: { file: rules.script, ...(logs ? { logs } : {}) } });
  if (typeof value !== 'object' || value === null) throw refuse('the sandbox returned no result');
  const result = value as Record<string, unknown>;
  const logs = readLogs(result['logs']);
  if (typeof logs === 'string') throw refuse(logs);
  // The prelude stops at the limit; this is the check the script cannot reach.
  if (Array.isArray(result['outputs']) && result['outputs'].length > rules.maxOutputs) throw tooManyOutputs(rules.script, rules.maxOutputs, logs);
  const outputs = readOutputs(result['outputs'], rules.outputBytes);
  if (typeof outputs === 'string') throw refuse(outputs, logs);
  if (result['meta'] === undefined) return { outputs, logs };
  const meta = readMeta(result['meta'], outputs?.length ?? 0, rules);
  if (typeof meta === 'string') throw refuse(meta, logs);
  return { outputs, meta, logs };
};
