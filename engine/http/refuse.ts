import type Koa from 'koa';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { httpStatusOf, type ErrorCode, type HttpStatus } from '../errors.ts';

// How the HTTPS receiver says no: `{"Success": false, "error", "code"}` with the code's status (the
// registry's, engine/errors.ts), and one log line naming the client, so an operator can tell a wrong
// token from a wrong address from a flood.

export interface RefuseOptions {
  /** Overrides the code's status where this answer genuinely differs; say why at the call. */
  status?: HttpStatus;
  /** Seconds, for 429 and 503. */
  retryAfter?: number;
  /** The body was read to its end, so the connection can carry the client's next request. */
  bodyRead?: boolean;
  /** Extra fields for the log line (token name, message id, …). */
  log?: Record<string, unknown>;
  level?: 'info' | 'warn' | 'error';
}

/** The status a refusal with `code` answers with: the override, else the registry's (500 for a code with none). */
const statusFor = (code: ErrorCode, options: RefuseOptions): number => options.status ?? httpStatusOf(code) ?? 500;

export const refuse = (ctx: Koa.Context, logger: Logger, code: ErrorCode, message: string, options: RefuseOptions = {}): void => {
  const status = statusFor(code, options);
  logger[options.level ?? 'warn']({ code, status, client: ctx.ip, path: ctx.path, ...options.log }, `HTTPS request refused: ${message}`);
  ctx.status = status;
  ctx.body = { Success: false, error: message, code };
  if (options.retryAfter !== undefined) ctx.set('Retry-After', String(Math.max(1, Math.ceil(options.retryAfter))));
  // An unread body would otherwise have to be read and thrown away before the connection could
  // serve another request: closing is cheaper, and a refused client gains nothing from keep-alive.
  if (!options.bodyRead) ctx.set('Connection', 'close');
};

/**
 * The same refusal for a request that asked to upgrade (a WebSocket handshake), written on the raw
 * socket, which is then closed: such a request has no response object.
 */
export const refuseUpgrade = (
  req: IncomingMessage,
  socket: Duplex,
  logger: Logger,
  code: ErrorCode,
  message: string,
  options: Pick<RefuseOptions, 'status' | 'retryAfter' | 'log' | 'level'> = {},
): void => {
  const status = statusFor(code, options);
  const path = (req.url ?? '').split('?', 1)[0];
  logger[options.level ?? 'warn']({ code, status, client: req.socket.remoteAddress, path, ...options.log }, `WebSocket upgrade refused: ${message}`);
  const body = JSON.stringify({ Success: false, error: message, code });
  const retry = options.retryAfter === undefined ? '' : `Retry-After: ${Math.max(1, Math.ceil(options.retryAfter))}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${retry}Connection: close\r\n\r\n${body}`,
  );
};
