// Runs inside the sandbox (bare V8: no Node, no DOM, no TextEncoder, no timers) ahead of a channel
// script: builds what scripts see (`msg`, `ctx`, `console`) and turns whatever a script returns into
// plain strings, so only copies of strings and log lines ever cross back to the engine.
import { parseHl7, type Hl7Message, type Hl7Segment } from '../hl7/message.ts';
import type { OutputMeta } from '../message.ts';

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
  | { ok: false; kind: 'bad-result'; message: string; logs: ScriptLog[] }
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

// The context lives on between messages, so keep our own handles on builtins a script might replace.
const stringify = JSON.stringify;
const isArray = Array.isArray;
const keysOf = Object.keys;

const MAX_LOG_LINES = 1000;
const MAX_LINE_CHARS = 10_000;
const MAX_VALUE_CHARS = 2_000;

const clip = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;

/** Messages and segments handed to the script: a result that is one of them means its toString(). */
const hl7Objects = new WeakSet<object>();

const createMessage = (text: string): ScriptMessage => {
  // Parsed on first use: a JSON or CSV message still has `text`; only get/set/segments need HL7.
  let parsed: Hl7Message | undefined;
  const hl7 = (): Hl7Message => (parsed ??= parseHl7(text));
  const message: ScriptMessage = Object.freeze({
    text,
    get: (path: string) => hl7().get(path),
    set: (path: string, value: string) => hl7().set(path, value),
    segments: (name?: string) => {
      const list = hl7().segments(name);
      for (const segment of list) hl7Objects.add(segment);
      return list;
    },
    toString: () => (parsed ? parsed.toString() : text),
  });
  hl7Objects.add(message);
  return message;
};

const toJson = (value: unknown): string | undefined => {
  const seen = new WeakSet<object>();
  return stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[Circular]';
      seen.add(v);
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
      case 'function':
        return `[Function ${value.name || '(anonymous)'}]`;
      case 'symbol':
        return value.toString();
      case 'bigint':
        return `${value}n`;
      case 'number':
      case 'boolean':
        return String(value);
    }
    if (value === null) return 'null';
    if (hl7Objects.has(value as object)) return clip(String(value), MAX_VALUE_CHARS);
    if (value instanceof Error) return `${value.name}: ${value.message}`;
    return clip(toJson(value) ?? String(value), MAX_VALUE_CHARS);
  } catch {
    return '[value that cannot be shown]';
  }
};

let sink: ScriptLog[] = [];
let dropped = 0;

const emit = (level: ScriptLogLevel, args: unknown[]): void => {
  if (sink.length >= MAX_LOG_LINES) {
    dropped++;
    return;
  }
  let line = '';
  for (let i = 0; i < args.length; i++) line += (i === 0 ? '' : ' ') + formatValue(args[i]);
  sink.push({ level, message: clip(line, MAX_LINE_CHARS) });
};

// Scripts written for Node or the browser reach for console; it feeds the same per-message log.
Object.defineProperty(globalThis, 'console', {
  value: Object.freeze({
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

class BadResult extends Error {}
/** Thrown as soon as a message's outputs pass maxOutputs, so the rest are never converted or copied out. */
class TooManyOutputs extends Error {}

const ONE_OUTPUT = 'return a string, the message, a JSON-compatible value, an array of those, or null to filter';

const normalizeOne = (value: unknown, what: string): string => {
  switch (typeof value) {
    case 'string':
      return value;
    case 'function':
      throw new BadResult(`${what} is a function; ${ONE_OUTPUT}`);
    case 'symbol':
      throw new BadResult(`${what} is a symbol; ${ONE_OUTPUT}`);
    case 'bigint':
      throw new BadResult(`${what} is a bigint, which JSON cannot represent; convert it to a string`);
    case 'number':
      if (!Number.isFinite(value)) throw new BadResult(`${what} is ${value}, which JSON cannot represent`);
      return String(value);
    case 'boolean':
      return String(value);
  }
  const object = value as object;
  if (hl7Objects.has(object)) return String(object);
  if (typeof (object as { then?: unknown }).then === 'function') {
    throw new BadResult(`${what} is a promise; await it before returning`);
  }
  let json: string | undefined;
  try {
    json = stringify(object);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new BadResult(`${what} cannot be converted to JSON: ${reason}`);
  }
  if (json === undefined) throw new BadResult(`${what} converts to no JSON at all; ${ONE_OUTPUT}`);
  return json;
};

/**
 * null = filtered. Nulls inside an array are skipped, and an array with nothing left filters too.
 * `room`: how many outputs may still be added (maxOutputs less those sent with ctx.deliver).
 */
const normalize = (value: unknown, room: number): string[] | null => {
  if (value === null || value === undefined) return null;
  if (!isArray(value)) {
    if (room < 1) throw new TooManyOutputs();
    return [normalizeOne(value, 'the result')];
  }
  const outputs: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (item === null || item === undefined) continue;
    if (isArray(item)) throw new BadResult(`element ${i} of the result is an array; return a flat array of outputs`);
    if (outputs.length >= room) throw new TooManyOutputs();
    outputs.push(normalizeOne(item, `element ${i} of the result`));
  }
  return outputs.length === 0 ? null : outputs;
};

const DELIVER_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'];
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
// Framing and Ferry's own headers: a script choosing them would break the request or the dedup id.
const RESERVED_HEADERS = ['host', 'content-length', 'transfer-encoding', 'connection', 'x-ferry-message-id'];

/** Checks ctx.deliver's options; what reaches the engine is a fresh plain object of strings. */
const checkMeta = (options: unknown): OutputMeta => {
  if (typeof options !== 'object' || options === null || isArray(options)) {
    throw new BadResult('ctx.deliver options must be an object such as { url: "https://…" }');
  }
  const given = options as Record<string, unknown>;
  const meta: OutputMeta = {};
  for (const key of keysOf(given)) {
    const value = given[key];
    if (value === undefined) continue;
    if (key === 'url') {
      if (typeof value !== 'string' || !/^https?:\/\/\S+$/.test(value)) throw new BadResult(`ctx.deliver url must be an http(s):// URL (got ${formatValue(value)})`);
      meta.url = value;
    } else if (key === 'method') {
      const method = typeof value === 'string' ? value.toUpperCase() : '';
      if (!DELIVER_METHODS.includes(method)) throw new BadResult(`ctx.deliver method must be one of ${DELIVER_METHODS.join(', ')} (got ${formatValue(value)})`);
      meta.method = method as OutputMeta['method'];
    } else if (key === 'headers') {
      if (typeof value !== 'object' || value === null || isArray(value)) throw new BadResult('ctx.deliver headers must be an object of strings');
      const headers: Record<string, string> = {};
      for (const name of keysOf(value)) {
        const header = (value as Record<string, unknown>)[name];
        if (!HEADER_NAME.test(name)) throw new BadResult(`ctx.deliver header name "${name}" is not valid`);
        if (RESERVED_HEADERS.includes(name.toLowerCase())) throw new BadResult(`ctx.deliver header ${name} is set by Ferry`);
        if (typeof header !== 'string' || /[\r\n\0]/.test(header)) throw new BadResult(`ctx.deliver header ${name} must be a string without line breaks`);
        headers[name] = header;
      }
      meta.headers = headers;
    } else if (key === 'connectionId') {
      if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
        throw new BadResult(`ctx.deliver connectionId must be a WebSocket connection id (got ${formatValue(value)})`);
      }
      meta.connectionId = value;
    } else {
      throw new BadResult(`ctx.deliver options: unknown key "${key}" (use url, method, headers, connectionId)`);
    }
  }
  return meta;
};

const utf8Length = (text: string): number => {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
};

const checkSize = (outputs: string[], cap: number): void => {
  let units = 0;
  for (const output of outputs) units += output.length;
  // A UTF-16 unit is 1–3 UTF-8 bytes: count exactly only when the bounds cannot decide.
  if (units * 3 <= cap) return;
  const bytes = units > cap ? units : outputs.reduce((sum, output) => sum + utf8Length(output), 0);
  if (bytes > cap) {
    throw new BadResult(`the outputs total ${units > cap ? 'at least ' : ''}${bytes} bytes, more than the ${cap}-byte limit per message`);
  }
};

const describeThrown = (thrown: unknown): { message: string; code: string | undefined; stack: string | undefined } => {
  try {
    if (thrown instanceof Error || (typeof thrown === 'object' && thrown !== null && typeof (thrown as Error).stack === 'string' && 'message' in thrown)) {
      const error = thrown as Error & { code?: unknown };
      const code = typeof error.code === 'string' ? error.code : undefined;
      // FerryErrors from the HL7 library read better by their code (HL7_BAD_PATH) than by their class.
      const head = code ?? (String(error.name || '') || 'Error');
      const text = String(error.message ?? '');
      return { message: clip(text ? `${head}: ${text}` : head, MAX_LINE_CHARS), code, stack: typeof error.stack === 'string' ? error.stack : undefined };
    }
    let message: string;
    if (thrown === undefined || thrown === null) message = `threw ${thrown}`;
    else if (typeof thrown === 'object') message = `threw an object: ${formatValue(thrown)}`;
    else message = `threw a ${typeof thrown}: ${formatValue(thrown)}`;
    return { message: clip(message, MAX_LINE_CHARS), code: undefined, stack: undefined };
  } catch {
    return { message: 'threw a value that cannot be described', code: undefined, stack: undefined };
  }
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
  return async (input) => {
    const logs: ScriptLog[] = [];
    sink = logs;
    dropped = 0;
    const finish = (outcome: Outcome): Outcome => {
      if (dropped > 0) logs.push({ level: 'warn', message: `${dropped} more log lines dropped (limit ${MAX_LOG_LINES} per message)` });
      return outcome;
    };
    let value: unknown;
    // Outputs a script sent with ctx.deliver: converted when called, so later edits do not change them.
    const delivered: string[] = [];
    const deliveredMeta: Array<OutputMeta | null> = [];
    // Set once ctx.deliver passes maxOutputs: the message errors even if the script caught the throw.
    let overflowed = false;
    const tooMany = (): Outcome => finish({ ok: false, kind: 'too-many-outputs', logs });
    try {
      const msg = createMessage(input.text);
      const ctx = Object.freeze({
        channel: options.channel,
        id: input.id,
        log: (...args: unknown[]) => emit('info', args),
        deliver: (body: unknown, meta?: unknown) => {
          if (body === null || body === undefined) throw new BadResult('ctx.deliver needs a body');
          if (overflowed || delivered.length >= options.maxOutputs) {
            overflowed = true;
            throw new TooManyOutputs(`more than ${options.maxOutputs} outputs for one message`);
          }
          const text = normalizeOne(body, 'the ctx.deliver body');
          deliveredMeta.push(meta === undefined ? null : checkMeta(meta));
          delivered.push(text);
        },
      });
      value = await handler(msg, ctx);
    } catch (error) {
      if (overflowed) return tooMany();
      return finish({ ok: false, kind: 'threw', ...describeThrown(error), logs });
    }
    if (overflowed) return tooMany();
    try {
      const returned = normalize(value, options.maxOutputs - delivered.length);
      const outputs = delivered.length === 0 ? returned : [...delivered, ...(returned ?? [])];
      if (outputs) checkSize(outputs, options.outputBytes);
      if (outputs && deliveredMeta.some((m) => m !== null)) {
        const meta = [...deliveredMeta, ...(returned ?? []).map(() => null)];
        return finish({ ok: true, outputs, meta, logs });
      }
      return finish({ ok: true, outputs, logs });
    } catch (error) {
      if (error instanceof BadResult) return finish({ ok: false, kind: 'bad-result', message: error.message, logs });
      if (error instanceof TooManyOutputs) return tooMany();
      // The script's own toJSON() or toString() threw while we converted its result.
      return finish({ ok: false, kind: 'threw', ...describeThrown(error), logs });
    }
  };
};
