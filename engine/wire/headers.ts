// The HTTP headers Ferry owns, and which request headers users may set, in one place: the https
// destination's configured `headers` (its config check), a script's ctx.deliver headers (checked in
// the sandbox's prelude, then again by the engine, which is the authority: output-meta.ts), and the
// request the https destination builds. This file is also bundled into the sandbox, so it uses only
// the builtins captured in intrinsics.ts.
import { codeUnitAt, lowerCase, matches, sliceOf } from '../sandbox/intrinsics.ts';

/**
 * The header a sending Ferry puts its message id in (the https destination) and a receiving one
 * takes it from (the https source): a resend with the same id is not processed twice.
 */
export const MESSAGE_ID_HEADER = 'X-Ferry-Message-Id';

/**
 * Headers Ferry or the HTTP layer sets: Host and the framing (a script's Transfer-Encoding next to
 * Ferry's Content-Length would smuggle a second request past a proxy), the hop-by-hop headers that
 * belong to the connection Ferry manages (RFC 9110 §7.6.1), and the id receivers deduplicate on
 * (MESSAGE_ID_HEADER). Lower case.
 */
export const RESERVED_HEADERS: readonly string[] = [
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  lowerCase(MESSAGE_ID_HEADER),
];

/** A header name is an RFC 9110 token. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

export const isHeaderName = (name: string): boolean => matches(TOKEN, name);

export const isReservedHeader = (name: string): boolean => {
  const lower = lowerCase(name);
  for (let i = 0; i < RESERVED_HEADERS.length; i++) if (RESERVED_HEADERS[i] === lower) return true;
  return false;
};

/**
 * What node:http sends as a header value: tab, printable ASCII and Latin-1 (it throws on anything
 * else when the request is built). No CR, LF or NUL, so a value cannot start a header of its own.
 */
export const isHeaderValue = (value: string): boolean => {
  for (let i = 0; i < value.length; i++) {
    const unit = codeUnitAt(value, i);
    if ((unit < 0x20 && unit !== 0x09) || unit === 0x7f || unit > 0xff) return false;
  }
  return true;
};

/** A name as error messages show it: a bad one may be long. */
const shown = (name: string): string => (name.length <= 100 ? name : `${sliceOf(name, 0, 100)}…`);

/** Why `name: value` may not be sent, or undefined when it may. */
export const headerProblem = (name: string, value: unknown): string | undefined => {
  if (!isHeaderName(name)) return `header name "${shown(name)}" is not valid`;
  if (isReservedHeader(name)) return `header ${name} is set by Ferry`;
  if (typeof value !== 'string' || !isHeaderValue(value)) {
    return `header ${name} must be a string without line breaks or other control characters (tab, printable ASCII and Latin-1)`;
  }
  return undefined;
};
