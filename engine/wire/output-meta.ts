// The rules for ctx.deliver's options (OutputMeta, message.ts): what a script may choose about where
// and how one output is sent. They run twice. In the sandbox's prelude, when the script calls
// ctx.deliver, so that a mistake errors at that line. And in the engine, on every meta that comes back
// from the sandbox (sandbox/check-result.ts): that check is the one that counts, because the prelude
// shares a context with the script. readOutputMeta is bundled into the sandbox too, so it uses only
// the builtins captured in sandbox/intrinsics.ts.
import type { DestinationConfig } from '../config/contract.ts';
import type { OutputMeta } from '../message.ts';
import { isArray, keysOf, matches, record, sliceOf, upperCase } from '../sandbox/intrinsics.ts';
import { headerProblem } from './headers.ts';

export const DELIVER_METHODS: readonly string[] = ['POST', 'PUT', 'PATCH', 'DELETE'];
/** RFC 9110 asks servers to take at least 8000 octets; longer URLs are often refused. */
export const MAX_URL_CHARS = 8192;
/** A script's header names and values together; node and most servers refuse more than 16 KB in all. */
export const MAX_HEADER_CHARS = 8192;

const HTTP_URL = /^https?:\/\/\S+$/;
const CONNECTION_ID = /^[A-Za-z0-9_-]{1,64}$/;

const got = (value: unknown): string =>
  typeof value === 'string' ? `"${value.length <= 200 ? value : `${sliceOf(value, 0, 200)}…`}"` : value === null ? 'null' : `a ${typeof value}`;

const isMethod = (method: string): boolean => {
  for (let i = 0; i < DELIVER_METHODS.length; i++) if (DELIVER_METHODS[i] === method) return true;
  return false;
};

const readHeaders = (value: unknown): Record<string, string> | string => {
  if (typeof value !== 'object' || value === null || isArray(value)) return 'ctx.deliver headers must be an object of strings';
  const given = value as Record<string, unknown>;
  const headers: Record<string, string> = record({});
  const names = keysOf(given);
  let chars = 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    // Read once: a getter could answer differently the second time.
    const header = given[name];
    const problem = headerProblem(name, header);
    if (problem !== undefined) return `ctx.deliver ${problem}`;
    chars += name.length + (header as string).length;
    if (chars > MAX_HEADER_CHARS) return `ctx.deliver headers are more than ${MAX_HEADER_CHARS} characters in all`;
    headers[name] = header as string;
  }
  return headers;
};

/**
 * ctx.deliver's options as a fresh object of plain strings, or what is wrong with them. Undefined
 * values count as absent. Applied to its own result, it returns the same meta.
 */
export const readOutputMeta = (options: unknown): OutputMeta | string => {
  if (typeof options !== 'object' || options === null || isArray(options)) {
    return 'ctx.deliver options must be an object such as { url: "https://…" }';
  }
  const given = options as Record<string, unknown>;
  const meta: OutputMeta = record({});
  const keys = keysOf(given);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const value = given[key];
    if (value === undefined) continue;
    if (key === 'url') {
      if (typeof value !== 'string' || !matches(HTTP_URL, value)) return `ctx.deliver url must be an http(s):// URL (got ${got(value)})`;
      if (value.length > MAX_URL_CHARS) return `ctx.deliver url is ${value.length} characters long, more than ${MAX_URL_CHARS}`;
      meta.url = value;
    } else if (key === 'method') {
      const method = typeof value === 'string' ? upperCase(value) : '';
      if (!isMethod(method)) return `ctx.deliver method must be one of POST, PUT, PATCH, DELETE (got ${got(value)})`;
      meta.method = method as OutputMeta['method'];
    } else if (key === 'headers') {
      const headers = readHeaders(value);
      if (typeof headers === 'string') return headers;
      meta.headers = headers;
    } else if (key === 'connectionId') {
      if (typeof value !== 'string' || !matches(CONNECTION_ID, value)) return `ctx.deliver connectionId must be a WebSocket connection id (got ${got(value)})`;
      meta.connectionId = value;
    } else {
      return `ctx.deliver options: unknown key "${key.length <= 100 ? key : `${sliceOf(key, 0, 100)}…`}" (use url, method, headers, connectionId)`;
    }
  }
  return meta;
};

/** Each destination type with the options it follows (the others ignore them): connectors.ts's list. */
export type Followers = ReadonlyArray<{ type: string; follows?: ReadonlyArray<keyof OutputMeta> }>;

/** A channel's destinations, and what follows which option. */
export interface DeliverTargets {
  destinations: ReadonlyArray<Pick<DestinationConfig, 'name' | 'type'>>;
  followers: Followers;
}

/**
 * An option of `meta` that none of the channel's destinations follows, said as an error; undefined
 * when each is followed by one. A url on a channel that only writes files is a mistake to report,
 * not an option to drop in silence. (Engine only: the sandbox does not know the destinations.)
 */
export const unfollowedOption = (meta: OutputMeta, { destinations, followers }: DeliverTargets): string | undefined => {
  for (const key of keysOf(meta) as Array<keyof OutputMeta>) {
    const types = followers.filter((follower) => follower.follows?.includes(key)).map((follower) => follower.type);
    if (destinations.some((destination) => types.includes(destination.type))) continue;
    const names = destinations.map((destination) => `${destination.name} (${destination.type})`).join(', ');
    return `ctx.deliver ${key} is followed only by ${types.join(' or ')} destinations, and this channel has none (its destinations: ${names || 'none'})`;
  }
  return undefined;
};
