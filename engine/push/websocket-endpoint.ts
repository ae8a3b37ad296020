// The WebSocket endpoint on the engine's HTTPS listener: clients connect, authenticate with a token,
// get a connection id and subscribe to topics of the push hub. The protocol is JSON text frames:
//
//   client → {"type":"auth","token":"…"}                       (or Authorization: Bearer on the upgrade)
//   server ← {"type":"welcome","connectionId":"…"}
//   client → {"type":"subscribe","topic":"lab.results","lastEventId"?:"…"}
//   server ← {"type":"subscribed","topic","lastEventId","replay"}, then any {"type":"gap",…} and replayed events
//   server ← {"type":"event","topic","id","args","kwargs"}
//   client → {"type":"unsubscribe","topic":"…"}              server ← {"type":"unsubscribed","topic"}
//   server ← {"type":"error","code","message","topic"?}      (the connection stays open unless it says so)
//
// A token's `channels` list (tokens.yaml) grants topics by their first dot-separated part: `lab`
// grants `lab` and `lab.*`, `*` grants every topic. Tokens are checked again every heartbeat, so a
// revoked token's connections close within one heartbeat.
//
// Memory per connection is bounded: a subscriber whose unsent data (ws bufferedAmount) is over
// `sendBuffer` when the next frame is due is closed with 4429 instead of being buffered for without
// limit. What was written before the close still reaches it, so a replay larger than the limit is
// delivered in pieces: the client reconnects with the last id it got and continues from there.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { TokenTable } from '../auth/tokens.ts';
import type { WebSocketConfig } from '../config/contract.ts';
import { addressMatcher } from '../wire/address-rules.ts';
import type { UpgradeHandler } from '../http/https-listener.ts';
import { refuseUpgrade } from '../http/refuse.ts';
import { topicGrant, topicProblem } from './event.ts';
import type { PushHub } from './hub.ts';

/** Close codes a client can act on (4000–4999 is the range for applications). */
export const closeCodes = {
  /** No valid token: missing, unknown, revoked, or not sent within the auth timeout. */
  unauthorized: 4401,
  /** A frame that is not the protocol before authentication. */
  badRequest: 4400,
  /** The connection could not keep up: its send buffer passed `sendBuffer`. Reconnect with lastEventId. */
  tooSlow: 4429,
  /** The engine is stopping. */
  goingAway: 1001,
} as const;

export interface WebSocketEndpointOptions {
  config: WebSocketConfig;
  hub: PushHub;
  tokens: Pick<TokenTable, 'verify'>;
  logger: Logger;
  /** How long a connection may stay unauthenticated. */
  authTimeoutMs?: number;
  /** Ping interval; a connection that did not answer the previous ping is dropped. Tokens are re-checked too. */
  heartbeatMs?: number;
}

export interface WebSocketEndpoint {
  handleUpgrade: UpgradeHandler;
  readonly connections: number;
  /** Closes every connection (1001) and stops the heartbeat; safe to call twice. */
  stop(): Promise<void>;
}

interface Connection {
  id: string;
  ws: WebSocket;
  client: string;
  token: string | undefined;
  alive: boolean;
  closing: boolean;
  authTimer: NodeJS.Timeout | undefined;
}

const AUTH_TIMEOUT_MS = 10_000;
const HEARTBEAT_MS = 30_000;
// Clients send only small control frames.
const MAX_CLIENT_FRAME_BYTES = 16 * 1024;
const MAX_SUBSCRIPTIONS = 100;
// After a close frame, how long a peer that does not answer keeps its socket.
const CLOSE_GRACE_MS = 2_000;

const bearerToken = (header: string | undefined): string | undefined => {
  const match = header === undefined ? null : /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
  return match?.[1];
};

export const websocketEndpoint = (options: WebSocketEndpointOptions): WebSocketEndpoint => {
  const { config, hub, tokens } = options;
  const log = options.logger.child({ endpoint: 'websocket' });
  const authTimeoutMs = options.authTimeoutMs ?? AUTH_TIMEOUT_MS;
  const allowed = config.allowIps.length > 0 ? addressMatcher(config.allowIps) : undefined;
  const wss = new WebSocketServer({ noServer: true, clientTracking: false, maxPayload: MAX_CLIENT_FRAME_BYTES, perMessageDeflate: false });
  const connections = new Map<string, Connection>();
  let stopping = false;

  /** Whether a token is in the table at all (verify says 'forbidden' for a known token without `*`). */
  const known = (token: string): boolean => {
    const verdict = tokens.verify(token, '*');
    return verdict.ok || verdict.reason === 'forbidden';
  };
  const mayRead = (token: string, topic: string): boolean => tokens.verify(token, topicGrant(topic)).ok;

  const frame = (connection: Connection, value: Record<string, unknown>): void => send(connection, JSON.stringify(value));

  const close = (connection: Connection, code: number, reason: string): void => {
    if (connection.closing) return;
    connection.closing = true;
    clearTimeout(connection.authTimer);
    hub.disconnect(connection.id);
    connection.ws.close(code, reason);
    // A peer too slow to read its data will not read the close frame either.
    setTimeout(() => connection.ws.terminate(), CLOSE_GRACE_MS).unref();
  };

  function send(connection: Connection, text: string): void {
    if (connection.closing || connection.ws.readyState !== WebSocket.OPEN) return;
    // Judged before the frame, not with it: a single event larger than the limit still goes out
    // to a client that keeps up, so memory per connection is at most sendBuffer plus one frame.
    if (connection.ws.bufferedAmount > config.sendBufferBytes) {
      log.warn({ connectionId: connection.id, client: connection.client, buffered: connection.ws.bufferedAmount }, 'WebSocket subscriber too slow; disconnected');
      close(connection, closeCodes.tooSlow, `send buffer over ${config.sendBufferBytes} bytes; reconnect with lastEventId`);
      return;
    }
    connection.ws.send(text);
  }

  const welcome = (connection: Connection, token: string): void => {
    clearTimeout(connection.authTimer);
    connection.authTimer = undefined;
    connection.token = token;
    hub.connect({ connectionId: connection.id, send: (text) => send(connection, text) });
    frame(connection, { type: 'welcome', connectionId: connection.id });
    log.debug({ connectionId: connection.id, client: connection.client }, 'WebSocket client authenticated');
  };

  const error = (connection: Connection, code: string, message: string, topic?: string): void =>
    frame(connection, { type: 'error', code, message, ...(topic === undefined ? {} : { topic }) });

  const onMessage = (connection: Connection, data: RawData, isBinary: boolean): void => {
    let message: Record<string, unknown> | undefined;
    if (!isBinary) {
      try {
        const parsed: unknown = JSON.parse(data.toString());
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) message = parsed as Record<string, unknown>;
      } catch {
        message = undefined;
      }
    }
    const type = message?.['type'];

    if (connection.token === undefined) {
      if (type !== 'auth') return close(connection, closeCodes.badRequest, 'authenticate first: {"type":"auth","token":"…"}');
      const token = message!['token'];
      if (typeof token !== 'string' || !known(token)) {
        log.warn({ client: connection.client }, 'WebSocket authentication refused: unknown or revoked token');
        error(connection, 'unauthorized', 'unknown or revoked token');
        return close(connection, closeCodes.unauthorized, 'unknown or revoked token');
      }
      return welcome(connection, token);
    }

    if (!message || typeof type !== 'string') return error(connection, 'bad_request', 'frames are JSON objects with a "type"');
    const topic = message['topic'];
    switch (type) {
      case 'subscribe': {
        const problem = topicProblem(topic);
        if (problem) return error(connection, 'bad_request', problem);
        const name = topic as string;
        const lastEventId = message['lastEventId'];
        if (lastEventId !== undefined && lastEventId !== null && typeof lastEventId !== 'string') {
          return error(connection, 'bad_request', 'lastEventId must be a string', name);
        }
        if (!mayRead(connection.token, name)) {
          log.info({ connectionId: connection.id, client: connection.client, topic: name }, 'WebSocket subscribe refused: token not granted the topic');
          return error(connection, 'forbidden', `this token may not subscribe to ${name} (grant "${topicGrant(name)}" or "*")`, name);
        }
        const current = hub.subscriptions(connection.id);
        if (!current.includes(name) && current.length >= MAX_SUBSCRIPTIONS) {
          return error(connection, 'too_many_subscriptions', `a connection may hold ${MAX_SUBSCRIPTIONS} subscriptions`, name);
        }
        hub.subscribe(connection.id, name, lastEventId ?? undefined);
        return;
      }
      case 'unsubscribe': {
        if (typeof topic !== 'string') return error(connection, 'bad_request', 'topic must be a string');
        hub.unsubscribe(connection.id, topic);
        return frame(connection, { type: 'unsubscribed', topic });
      }
      case 'auth':
        return error(connection, 'bad_request', 'already authenticated');
      default:
        return error(connection, 'bad_request', `unknown frame type "${type.slice(0, 40)}" (use subscribe, unsubscribe)`);
    }
  };

  const accept = (ws: WebSocket, req: IncomingMessage, headerToken: string | undefined): void => {
    const connection: Connection = {
      id: randomBytes(12).toString('base64url'),
      ws,
      client: req.socket.remoteAddress ?? '',
      token: undefined,
      alive: true,
      closing: false,
      authTimer: undefined,
    };
    connections.set(connection.id, connection);
    ws.on('message', (data, isBinary) => onMessage(connection, data, isBinary));
    ws.on('pong', () => {
      connection.alive = true;
    });
    ws.on('error', (err) => log.info({ err, connectionId: connection.id }, 'WebSocket connection error'));
    ws.on('close', () => {
      connection.closing = true;
      clearTimeout(connection.authTimer);
      connections.delete(connection.id);
      hub.disconnect(connection.id);
    });
    if (headerToken !== undefined) welcome(connection, headerToken);
    else {
      connection.authTimer = setTimeout(() => close(connection, closeCodes.unauthorized, `no auth frame within ${authTimeoutMs} ms`), authTimeoutMs);
    }
  };

  const handleUpgrade: UpgradeHandler = (req, socket: Duplex, head) => {
    const client = req.socket.remoteAddress ?? '';
    const no = (code: Parameters<typeof refuseUpgrade>[3], message: string, extra: Parameters<typeof refuseUpgrade>[5] = {}): void =>
      refuseUpgrade(req, socket, log, code, message, extra);
    if (stopping) return no('ENGINE_SHUTTING_DOWN', 'the engine is stopping', { retryAfter: 5, level: 'info' });
    if (allowed && !allowed(client)) return no('HTTP_FORBIDDEN', `client address ${client} is not allowed on this path`);
    if (connections.size >= config.maxConnections) {
      // 503, not the code's 429: the endpoint is full for everyone, not this client over its own rate.
      return no('HTTP_RATE_LIMITED', `the endpoint holds its maximum of ${config.maxConnections} connections`, { status: 503, retryAfter: 5 });
    }
    const header = req.headers.authorization;
    const token = bearerToken(header);
    if (header !== undefined && (token === undefined || !known(token))) return no('HTTP_UNAUTHORIZED', 'unknown or revoked token');
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, req, token));
  };

  const heartbeat = setInterval(() => {
    hub.sweep();
    for (const connection of connections.values()) {
      if (connection.closing) continue;
      if (!connection.alive) {
        log.info({ connectionId: connection.id, client: connection.client }, 'WebSocket client did not answer a ping; dropped');
        connection.ws.terminate();
        continue;
      }
      connection.alive = false;
      connection.ws.ping();
      if (connection.token === undefined) continue;
      if (!known(connection.token)) {
        close(connection, closeCodes.unauthorized, 'token revoked');
        continue;
      }
      const token = connection.token;
      for (const topic of hub.subscriptions(connection.id)) {
        if (mayRead(token, topic)) continue;
        hub.unsubscribe(connection.id, topic);
        error(connection, 'forbidden', `this token may no longer subscribe to ${topic}; unsubscribed`, topic);
      }
    }
  }, options.heartbeatMs ?? HEARTBEAT_MS).unref();

  let stopped: Promise<void> | undefined;
  return {
    handleUpgrade,
    get connections() {
      return connections.size;
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(heartbeat);
        const open = [...connections.values()];
        const closed = Promise.all(open.map((c) => new Promise<void>((resolve) => (c.ws.readyState === WebSocket.CLOSED ? resolve() : c.ws.once('close', () => resolve())))));
        for (const connection of open) close(connection, closeCodes.goingAway, 'the engine is stopping');
        await closed;
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })();
      return stopped;
    },
  };
};
