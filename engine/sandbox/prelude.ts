// Runs inside the sandbox (bare V8: no Node, no DOM, no TextEncoder, no timers) ahead of a channel
// script: builds what scripts see (`msg`, `ctx`, `console`) and turns whatever a script returns into
// plain strings, so only copies of strings and log lines ever cross back to the engine.
//
// The context lives on between messages, and a script can replace any builtin it reaches
// (Array.prototype.includes, JSON.stringify, a setter on Object.prototype, Object.prototype.then …),
// on one message or at its top level. So the prelude's own logic uses only builtins captured before any
// script code ran (intrinsics.ts), index loops rather than iterators, and objects and arrays without a
// prototype; msg and ctx are built fresh, and frozen, for each message. A script's tampering cannot
// change how its outputs are checked or shaped, on that message or a later one. The engine checks what
// comes back all the same (check-result.ts): the prelude is where mistakes are caught early, with the
// script's line, not the authority.
//
// Why not a fresh context per message, which would undo any tampering: measured on the 2-core dev VM,
// ~1.1–1.2 ms more CPU a message (a context, the prelude and the script's top level again), against
// ~0.1–0.2 ms for a whole run of the bench script in a reused context; the engine's budget is 0.5 ms
// a message end to end. Why not freeze the builtins instead: ordinary code such as `this.name = 'X'`
// in an Error subclass would then throw (assigning over a frozen inherited property fails).
//
// msg.get/set/segments/toString run the HL7 library, which uses the builtins as the script left them:
// like a module variable, a replaced builtin is the script's own state (docs/sandbox.md).
import { parseHl7, type Hl7Message, type Hl7Segment } from '../hl7/message.ts';
import type { OutputMeta } from '../message.ts';
import { readOutputMeta } from '../wire/output-meta.ts';
import { MAX_LINE_CHARS, MAX_LOG_LINES } from './check-result.ts';
import {
  addToWeakSet,
  codeUnitAt,
  describeSymbol,
  ErrorClass,
  freeze,
  indexIn,
  inWeakSet,
  isArray,
  isFiniteNumber,
  isInstance,
  jsonStringify,
  list,
  PromiseClass,
  record,
  sliceOf,
  StringOf,
  WeakSetClass,
} from './intrinsics.ts';

export type ScriptLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface ScriptLog {
  level: ScriptLogLevel;
  message: string;
}

export interface ScriptInput {
  id: string;
  text: string;
}

export interface PrepareOptions {
  channel: string;
  /** Cap on the UTF-8 size of all outputs of one message. */
  outputBytes: number;
  /** Cap on the number of outputs of one message, returned and ctx.deliver calls together. */
  maxOutputs: number;
}

/** What one invocation reports; `stack` still holds positions in the bundle (the engine maps them). */
export type Outcome =
  /** `meta` (only when a ctx.deliver call gave options) runs parallel to `outputs`. */
  | { ok: true; outputs: string[] | null; meta?: Array<OutputMeta | null>; logs: ScriptLog[] }
  | { ok: false; kind: 'threw'; message: string; code: string | undefined; stack: string | undefined; logs: ScriptLog[] }
  /** `stack` when the script called something that refused (ctx.deliver), so the engine names its line. */
  | { ok: false; kind: 'bad-result'; message: string; stack?: string | undefined; logs: ScriptLog[] }
  /** More than maxOutputs outputs: the engine words the error (isolate.ts), the same as its own check. */
  | { ok: false; kind: 'too-many-outputs'; logs: ScriptLog[] };

export type Invoke = (input: ScriptInput) => Promise<Outcome>;

interface ScriptMessage {
  readonly text: string;
  get(path: string): string;
  set(path: string, value: string): void;
  segments(name?: string): Hl7Segment[];
  toString(): string;
}

const MAX_VALUE_CHARS = 2_000;

const clip = (text: string, max: number): string =>
  text.length <= max ? text : `${sliceOf(text, 0, max)}… (${text.length - max} more characters)`;

/** The first line of `text`. */
const firstLine = (text: string): string => {
  const end = indexIn(text, '\n');
  return end === -1 ? text : sliceOf(text, 0, end);
};

/** Messages and segments handed to the script: a result that is one of them means its text. */
const hl7Objects = new WeakSetClass<object>();

/**
 * The text of a message or segment handed to the script, undefined for any other value. A message's
 * toString is its own, frozen; a segment's is its own too (a script that replaces it chooses the text).
 * (A WeakMap from each object to a text function measured ~90 µs more CPU a message than this WeakSet.)
 */
const hl7TextOf = (value: object, what: string): string | undefined => {
  if (!inWeakSet(hl7Objects, value)) return undefined;
  const text: unknown = (value as { toString(): unknown }).toString();
  if (typeof text !== 'string') throw badResult(`${what} is a segment whose toString() does not return a string`);
  return text;
};

const createMessage = (text: string): ScriptMessage => {
  // Parsed on first use: a JSON or CSV message still has `text`; only get/set/segments need HL7.
  let parsed: Hl7Message | undefined;
  const hl7 = (): Hl7Message => (parsed ??= parseHl7(text));
  const message: ScriptMessage = freeze({
    text,
    get: (path: string) => hl7().get(path),
    set: (path: string, value: string) => hl7().set(path, value),
    segments: (name?: string) => {
      const segments = hl7().segments(name);
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i];
        if (typeof segment === 'object' && segment !== null) addToWeakSet(hl7Objects, segment);
      }
      return segments;
    },
    toString: () => (parsed ? parsed.toString() : text),
  });
  addToWeakSet(hl7Objects, message);
  return message;
};

const toJson = (value: unknown): string | undefined => {
  const seen = new WeakSetClass<object>();
  return jsonStringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'object' && v !== null) {
      if (inWeakSet(seen, v)) return '[Circular]';
      addToWeakSet(seen, v);
    }
    return v;
  });
};

/** Like console.log, but never throws and never runs away: strings as-is, anything else as capped JSON. */
const formatValue = (value: unknown): string => {
  try {
    switch (typeof value) {
      case 'string':
        return value;
      case 'undefined':
        return 'undefined';
      case 'function': {
        const name: unknown = value.name;
        return `[Function ${typeof name === 'string' && name !== '' ? name : '(anonymous)'}]`;
      }
      case 'symbol':
        return describeSymbol(value);
      case 'bigint':
        return `${value}n`;
      case 'number':
      case 'boolean':
        return StringOf(value);
    }
    if (value === null) return 'null';
    const hl7 = hl7TextOf(value as object, 'the value');
    if (hl7 !== undefined) return clip(hl7, MAX_VALUE_CHARS);
    if (isInstance(value, ErrorClass)) return `${StringOf((value as Error).name)}: ${StringOf((value as Error).message)}`;
    return clip(toJson(value) ?? StringOf(value), MAX_VALUE_CHARS);
  } catch {
    return '[value that cannot be shown]';
  }
};

let sink: ScriptLog[] = list();
let dropped = 0;

const emit = (level: ScriptLogLevel, args: unknown[]): void => {
  if (sink.length >= MAX_LOG_LINES) {
    dropped++;
    return;
  }
  let line = '';
  for (let i = 0; i < args.length; i++) line += (i === 0 ? '' : ' ') + formatValue(args[i]);
  sink[sink.length] = record({ level, message: clip(line, MAX_LINE_CHARS) });
};

// Scripts written for Node or the browser reach for console; it feeds the same per-message log.
Object.defineProperty(globalThis, 'console', {
  value: freeze({
    log: (...args: unknown[]) => emit('info', args),
    info: (...args: unknown[]) => emit('info', args),
    debug: (...args: unknown[]) => emit('debug', args),
    warn: (...args: unknown[]) => emit('warn', args),
    error: (...args: unknown[]) => emit('error', args),
  }),
  writable: true,
  configurable: true,
  enumerable: false,
});

/** Errors the prelude raises for a result it refuses; known by identity, which a script cannot forge. */
const badResults = new WeakSetClass<object>();

const badResult = (message: string): Error => {
  const error = new ErrorClass(message);
  addToWeakSet(badResults, error);
  return error;
};

const isBadResult = (error: unknown): error is Error => typeof error === 'object' && error !== null && inWeakSet(badResults, error);

/** Thrown as soon as a message's outputs pass maxOutputs, so the rest are never converted or copied out. */
const tooManyOutputsErrors = new WeakSetClass<object>();

const tooManyOutputs = (message: string): Error => {
  const error = new ErrorClass(message);
  addToWeakSet(tooManyOutputsErrors, error);
  return error;
};

const isTooManyOutputs = (error: unknown): boolean => typeof error === 'object' && error !== null && inWeakSet(tooManyOutputsErrors, error);

const ONE_OUTPUT = 'return a string, the message, a JSON-compatible value, an array of those, or null to filter';

const reasonOf = (error: unknown): string => (isInstance(error, ErrorClass) ? firstLine(StringOf((error as Error).message)) : StringOf(error));

const normalizeOne = (value: unknown, what: string): string => {
  switch (typeof value) {
    case 'string':
      return value;
    case 'function':
      throw badResult(`${what} is a function; ${ONE_OUTPUT}`);
    case 'symbol':
      throw badResult(`${what} is a symbol; ${ONE_OUTPUT}`);
    case 'bigint':
      throw badResult(`${what} is a bigint, which JSON cannot represent; convert it to a string`);
    case 'number':
      if (!isFiniteNumber(value)) throw badResult(`${what} is ${value}, which JSON cannot represent`);
      return StringOf(value);
    case 'boolean':
      return StringOf(value);
  }
  const object = value as object;
  const hl7 = hl7TextOf(object, what);
  if (hl7 !== undefined) return hl7;
  if (isInstance(object, PromiseClass)) throw badResult(`${what} is a promise; await it before returning`);
  let json: string | undefined;
  try {
    json = jsonStringify(object);
  } catch (error) {
    throw badResult(`${what} cannot be converted to JSON: ${reasonOf(error)}`);
  }
  if (json === undefined) throw badResult(`${what} converts to no JSON at all; ${ONE_OUTPUT}`);
  return json;
};

/**
 * null = filtered. Nulls inside an array are skipped, and an array with nothing left filters too.
 * `room`: how many outputs may still be added (maxOutputs less those sent with ctx.deliver).
 */
const normalize = (value: unknown, room: number): string[] | null => {
  if (value === null || value === undefined) return null;
  const outputs = list<string>();
  if (!isArray(value)) {
    if (room < 1) throw tooManyOutputs('too many outputs');
    outputs[0] = normalizeOne(value, 'the result');
    return outputs;
  }
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (item === null || item === undefined) continue;
    if (isArray(item)) throw badResult(`element ${i} of the result is an array; return a flat array of outputs`);
    if (outputs.length >= room) throw tooManyOutputs('too many outputs');
    outputs[outputs.length] = normalizeOne(item, `element ${i} of the result`);
  }
  return outputs.length === 0 ? null : outputs;
};

const utf8Length = (text: string): number => {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = codeUnitAt(text, i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (codeUnitAt(text, i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
};

const checkSize = (outputs: string[], cap: number): void => {
  let units = 0;
  for (let i = 0; i < outputs.length; i++) units += outputs[i]!.length;
  // A UTF-16 unit is 1–3 UTF-8 bytes: count exactly only when the bounds cannot decide.
  if (units * 3 <= cap) return;
  let bytes = units;
  if (units <= cap) {
    bytes = 0;
    for (let i = 0; i < outputs.length; i++) bytes += utf8Length(outputs[i]!);
  }
  if (bytes > cap) {
    throw badResult(`the outputs total ${units > cap ? 'at least ' : ''}${bytes} bytes, more than the ${cap}-byte limit per message`);
  }
};

const describeThrown = (thrown: unknown): { message: string; code: string | undefined; stack: string | undefined } => {
  try {
    if (
      isInstance(thrown, ErrorClass) ||
      (typeof thrown === 'object' && thrown !== null && typeof (thrown as Error).stack === 'string' && 'message' in thrown)
    ) {
      const error = thrown as Error & { code?: unknown };
      const code = typeof error.code === 'string' ? error.code : undefined;
      // FerryErrors from the HL7 library read better by their code (HL7_BAD_PATH) than by their class.
      const head = code ?? (StringOf(error.name || '') || 'Error');
      const text = StringOf(error.message ?? '');
      const stack: unknown = error.stack;
      return record({ message: clip(text ? `${head}: ${text}` : head, MAX_LINE_CHARS), code, stack: typeof stack === 'string' ? stack : undefined });
    }
    let message: string;
    if (thrown === undefined || thrown === null) message = `threw ${thrown}`;
    else if (typeof thrown === 'object') message = `threw an object: ${formatValue(thrown)}`;
    else message = `threw a ${typeof thrown}: ${formatValue(thrown)}`;
    return record({ message: clip(message, MAX_LINE_CHARS), code: undefined, stack: undefined });
  } catch {
    return record({ message: 'threw a value that cannot be described', code: undefined, stack: undefined });
  }
};

/** The outcome of a run that ended in `error`: one the prelude raised (with where the script called), or the script's own. */
const failed = (error: unknown, logs: ScriptLog[]): Outcome => {
  if (!isBadResult(error)) return { ok: false, kind: 'threw', ...describeThrown(error), logs };
  const stack: unknown = error.stack;
  return { ok: false, kind: 'bad-result', message: StringOf(error.message), stack: typeof stack === 'string' ? stack : undefined, logs };
};

/**
 * Checks the script's exports once per load and returns the function that handles one message, or a
 * string saying why the script cannot run.
 */
export const prepare = (exports: unknown, options: PrepareOptions): Invoke | string => {
  const handler = (exports as { default?: unknown } | null | undefined)?.default;
  if (typeof handler !== 'function') {
    return handler === undefined
      ? 'the script has no default export; write `export default function (msg: Message, ctx: Context) { … }`'
      : `the default export is a ${handler === null ? 'null' : typeof handler}, not a function`;
  }
  const { channel, outputBytes, maxOutputs } = options;
  return async (input) => {
    const { id, text } = input;
    const logs = list<ScriptLog>();
    sink = logs;
    dropped = 0;
    // Without a prototype, the promise this function returns finds no `then` on it to call.
    const finish = (outcome: Outcome): Outcome => {
      if (dropped > 0) logs[logs.length] = record({ level: 'warn', message: `${dropped} more log lines dropped (limit ${MAX_LOG_LINES} per message)` });
      return record(outcome);
    };
    let value: unknown;
    // Outputs a script sent with ctx.deliver: converted when called, so later edits do not change them.
    const delivered = list<string>();
    const deliveredMeta = list<OutputMeta | null>();
    let anyMeta = false;
    // Set once ctx.deliver passes maxOutputs: the message errors even if the script caught the throw.
    let overflowed = false;
    const tooMany = (): Outcome => finish({ ok: false, kind: 'too-many-outputs', logs });
    try {
      const msg = createMessage(text);
      const ctx = freeze({
        channel,
        id,
        log: (...args: unknown[]) => emit('info', args),
        deliver: (body: unknown, meta?: unknown) => {
          if (body === null || body === undefined) throw badResult('ctx.deliver needs a body');
          if (overflowed || delivered.length >= maxOutputs) {
            overflowed = true;
            throw tooManyOutputs(`more than ${maxOutputs} outputs for one message`);
          }
          const output = normalizeOne(body, 'the ctx.deliver body');
          let checked: OutputMeta | null = null;
          if (meta !== undefined) {
            const read = readOutputMeta(meta);
            if (typeof read === 'string') throw badResult(read);
            checked = read;
            anyMeta = true;
          }
          deliveredMeta[deliveredMeta.length] = checked;
          delivered[delivered.length] = output;
        },
      });
      value = (handler as (msg: ScriptMessage, ctx: unknown) => unknown)(msg, ctx);
      // Only a promise is awaited: awaiting any other object would look up a `then` on it, which a
      // script may have put on Object.prototype to stand in for its result.
      if (isInstance(value, PromiseClass)) value = await value;
    } catch (error) {
      if (overflowed) return tooMany();
      return finish(failed(error, logs));
    }
    if (overflowed) return tooMany();
    try {
      const returned = normalize(value, maxOutputs - delivered.length);
      let outputs = returned;
      if (delivered.length > 0) {
        outputs = list<string>();
        for (let i = 0; i < delivered.length; i++) outputs[outputs.length] = delivered[i]!;
        if (returned) for (let i = 0; i < returned.length; i++) outputs[outputs.length] = returned[i]!;
      }
      if (outputs) checkSize(outputs, outputBytes);
      if (!outputs || !anyMeta) return finish({ ok: true, outputs, logs });
      const meta = list<OutputMeta | null>();
      for (let i = 0; i < deliveredMeta.length; i++) meta[meta.length] = deliveredMeta[i]!;
      if (returned) for (let i = 0; i < returned.length; i++) meta[meta.length] = null;
      return finish({ ok: true, outputs, meta, logs });
    } catch (error) {
      if (isTooManyOutputs(error)) return tooMany();
      // A refusal, or the script's own toJSON() or toString() threw while we converted its result.
      return finish(failed(error, logs));
    }
  };
};
