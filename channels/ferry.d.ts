// Types for Ferry channel scripts (channels/<channel>.ts). Ambient: no import needed.
//
//   export default function (msg: Message, ctx: Context) { … }
//
// Scripts run in a sandbox that is bare JavaScript (ES2022): no Node (`process`, `require`, `fs`), no
// browser (`fetch`, `setTimeout`), and imports only of relative files inside the channels folder.

/** One segment of an HL7 v2 message, e.g. a PID or an OBX. */
interface Segment {
  /** The segment id, e.g. `PID`. */
  readonly name: string;
  /** A path relative to this segment: `5.1`, `3[2].4.2`. `''` when absent. */
  get(path: string): string;
  /** A path relative to this segment; `value` is escaped for you. */
  set(path: string, value: string): void;
  /** The segment's text, without its terminator. */
  toString(): string;
}

/** The message a channel received. `get`, `set` and `segments` need HL7 v2 and throw HL7_NOT_HL7 otherwise. */
interface Message {
  /** The message exactly as received (not updated by `set`; `toString()` is). */
  readonly text: string;
  /**
   * Reads `SEG[n]-field[n].component.subcomponent`, all 1-based: `PID-5.1`, `OBX[2]-5`, `PID-3[2].1`.
   * `''` when anything along the path is absent. A leaf comes back unescaped (`PID-5.1` of `DOE^JOHN`
   * is `DOE`); a node with structure comes back as its wire text (`PID-5` is `DOE^JOHN`).
   */
  get(path: string): string;
  /**
   * Replaces the addressed node with `value` as one escaped leaf (`^` in `value` becomes `\S\`). Missing
   * segments, repetitions, fields and components are created. MSH-1 and MSH-2 cannot be set.
   */
  set(path: string, value: string): void;
  /** All segments in order, or those named `name`. Edits through them show in `toString()`. */
  segments(name?: string): Segment[];
  /** The message with your edits; unedited segments are byte-identical to the input. */
  toString(): string;
}

interface Context {
  /** The channel's name. */
  readonly channel: string;
  /** The message's id in the message log. */
  readonly id: string;
  /** Adds a line to this message's log: strings as-is, other values as JSON. */
  log(...args: unknown[]): void;
  /**
   * Sends `body` (a string, the message, a segment, or a value sent as JSON) as an output of its own,
   * optionally to a URL of your choice: an https destination follows `url` when it starts with one of
   * its `allowDynamicUrl` prefixes (and errors the message otherwise); a websocket destination sends
   * to the one connection `connectionId` names; other destinations ignore the options. Converted
   * when called, so later edits to the message do not change it. These outputs come before whatever
   * the function returns; returning `null` then does not filter the message.
   */
  deliver(body: string | number | boolean | Message | Segment | object, options?: DeliverOptions): void;
}

/** Where and how `ctx.deliver` sends one output. */
interface DeliverOptions {
  /** An http(s):// URL; it must start with one of the destination's `allowDynamicUrl` prefixes. */
  url?: string;
  /** Default POST. */
  method?: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Added to the destination's own headers (Content-Type, …); Host, Content-Length and X-Ferry-Message-Id are Ferry's. */
  headers?: Record<string, string>;
  /** A websocket destination sends the output to this connection only (its `welcome` id), not to the topic. */
  connectionId?: string;
}

/**
 * What a script may return: a string or a Message/Segment (its `toString()`) is one output; a number,
 * boolean or plain object is sent as JSON; an array is several outputs; `null`/`undefined` filters the
 * message. Async functions may return a Promise of any of these.
 */
type ScriptResult = string | number | boolean | Message | Segment | object | null | undefined;

/** console.log/info/debug/warn/error write to the message's log, like `ctx.log`. */
declare var console: {
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};
