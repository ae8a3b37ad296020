import Router from '@koa/router';
import Koa from 'koa';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { createTlsServer, reloadCertificates, type CertificateReload } from '../auth/tls-server.ts';
import type { HttpsListenerConfig } from '../config/contract.ts';
import { FerryError } from '../errors.ts';
import { urlOf } from './listen.ts';
import { refuse, refuseUpgrade } from './refuse.ts';

// The engine's one HTTPS listener. Every https-source channel owns a path on it; the paths are
// known from the config before any channel starts, so a path whose channel is stopped (or not yet
// started) answers 503 rather than 404. Channels mount a handler on start and unmount it on stop.
//
// Client certificates: the TLS layer asks for one (`request`/`require`) but never rejects the
// handshake (`rejectUnauthorized: false`). The decision is made per request, here for `require`
// and in the source for `auth: mtls`, so a refused client gets a JSON 401/403 and a log line
// instead of a bare TLS alert it cannot explain.

export type HttpsHandler = (ctx: Koa.Context) => Promise<void>;

/** Takes over a connection asking to upgrade (a WebSocket handshake); owns `socket` from then on. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface HttpsMount {
  /** Serves `path` with `handler` until the returned function is called; then the path answers 503. */
  mount(path: string, handler: HttpsHandler): () => void;
}

export interface HttpsListener extends HttpsMount {
  /** Hands upgrade requests for `path` to `handler` until the returned function is called. */
  mountUpgrade(path: string, handler: UpgradeHandler): () => void;
  start(): Promise<{ host: string; port: number; url: string }>;
  /** Stops accepting, lets requests in flight finish (for up to STOP_GRACE_MS), then closes. Safe to call twice. */
  stop(): Promise<void>;
  /** The bound port once started (the real one when configured as 0). */
  readonly port: number;
}

export interface HttpsListenerOptions {
  config: HttpsListenerConfig;
  /** Every https-source path in the config. */
  paths: readonly string[];
  logger: Logger;
}

const STOP_GRACE_MS = 5_000;

/** The peer's certificate as the TLS layer judged it: absent, not chaining to the CA, or good. */
export const peerCertificate = (ctx: Koa.Context): PeerCertificate => socketCertificate(ctx.req.socket);

export type PeerCertificate = { state: 'none' } | { state: 'untrusted'; cn: string; reason: string } | { state: 'trusted'; cn: string };

const socketCertificate = (from: IncomingMessage['socket']): PeerCertificate => {
  const socket = from as Partial<TLSSocket>;
  if (!socket.encrypted || typeof socket.getPeerCertificate !== 'function') return { state: 'none' };
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return { state: 'none' };
  const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : '';
  if (!socket.authorized) return { state: 'untrusted', cn, reason: String(socket.authorizationError ?? 'not signed by the CA') };
  return { state: 'trusted', cn };
};

export const httpsListener = ({ config, paths, logger }: HttpsListenerOptions): HttpsListener => {
  const log = logger.child({ listener: 'https' });
  const handlers = new Map<string, HttpsHandler>();
  const upgrades = new Map<string, UpgradeHandler>();
  const app = new Koa();
  const router = new Router();
  // Errors are answered here; Koa's default handler would print them to stderr besides.
  app.silent = true;

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      log.error({ err: error, path: ctx.path }, 'HTTPS request failed');
      if (!ctx.headerSent) {
        ctx.status = 500;
        ctx.body = { Success: false, error: 'internal error' };
      }
    }
  });

  for (const path of paths) {
    router.post(path, async (ctx) => {
      if (config.clientCert === 'require') {
        const cert = peerCertificate(ctx);
        if (cert.state === 'none') return refuse(ctx, log, 'HTTP_UNAUTHORIZED', 'a client certificate is required');
        if (cert.state === 'untrusted') {
          return refuse(ctx, log, 'HTTP_FORBIDDEN', `the client certificate${cert.cn ? ` (${cert.cn})` : ''} is not trusted: ${cert.reason}`);
        }
      }
      const handler = handlers.get(path);
      if (!handler) return refuse(ctx, log, 'HTTP_CHANNEL_STOPPED', 'the channel on this path is not running', { retryAfter: 5 });
      await handler(ctx);
    });
  }
  // A channel's path asked with another method: allowedMethods answers 405 with Allow: POST, and
  // this says so in the body, instead of the 404 text below that the router passed through.
  app.use(async (ctx, next) => {
    await next();
    if (ctx.status === 405) ctx.body = { Success: false, error: `${ctx.method} is not accepted on ${ctx.path}: post the message (POST)` };
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { Success: false, error: `no channel receives on ${ctx.path}` };
  });

  const callback = app.callback();
  let server: Server | undefined;
  let boundPort = config.port;
  let started: Promise<{ host: string; port: number; url: string }> | undefined;
  let stopped: Promise<void> | undefined;
  let reload: CertificateReload | undefined;

  const createServer = (): Server => {
    if (config.plain) return createHttpServer(callback);
    // Not plain: the config has made sure of cert and key.
    const files = { cert: config.cert!, key: config.key!, ca: config.ca };
    const created = createTlsServer(files, 'engine.https', (context) =>
      createHttpsServer({ ...context, requestCert: config.clientCert !== 'none', rejectUnauthorized: false }, callback),
    );
    reload = reloadCertificates({ files, server: created, logger: log, what: 'HTTPS' });
    return created;
  };

  const start = (): Promise<{ host: string; port: number; url: string }> => {
    started ??= (async () => {
      const created = createServer();
      server = created;
      // Answer `Expect: 100-continue` through the app: the source sends 100 only once the request
      // passed its checks, so a refused client never uploads its body at all.
      created.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => created.emit('request', req, res));
      created.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        socket.on('error', (error) => log.debug({ err: error }, 'upgrade socket error'));
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        if (config.clientCert === 'require') {
          const cert = socketCertificate(req.socket);
          if (cert.state === 'none') return refuseUpgrade(req, socket, log, 'HTTP_UNAUTHORIZED', 'a client certificate is required');
          if (cert.state === 'untrusted') {
            return refuseUpgrade(req, socket, log, 'HTTP_FORBIDDEN', `the client certificate${cert.cn ? ` (${cert.cn})` : ''} is not trusted: ${cert.reason}`);
          }
        }
        const handler = upgrades.get(path);
        // 404 like a POST to a path no channel receives on; the body needs a code, and no code means "no such path" here.
        if (!handler) return refuseUpgrade(req, socket, log, 'HTTP_BAD_REQUEST', `nothing accepts WebSocket connections on ${path}`, { status: 404, level: 'info' });
        handler(req, socket, head);
      });
      created.on('tlsClientError', (error: Error) => log.info({ err: error }, 'TLS handshake failed'));
      await new Promise<void>((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException): void => {
          const why = error.code === 'EADDRINUSE' ? 'address already in use' : (error.code ?? error.message);
          reject(new FerryError('PORT_IN_USE', `HTTPS listener cannot bind ${config.host}:${config.port}: ${why}`, { cause: error }));
        };
        created.once('error', onError);
        created.listen(config.port, config.host, () => {
          created.off('error', onError);
          created.on('error', (error) => log.error({ err: error }, 'HTTPS listener error'));
          resolve();
        });
      });
      boundPort = (created.address() as AddressInfo).port;
      const url = urlOf(config.plain ? 'http' : 'https', config.host, boundPort);
      log.info({ url, paths, clientCert: config.clientCert }, 'HTTPS listener started');
      return { host: config.host, port: boundPort, url };
    })();
    return started;
  };

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (started) await started.catch(() => undefined);
      reload?.stop();
      const current = server;
      if (!current?.listening) return;
      // close() ends idle keep-alive connections at once and waits for busy ones to finish.
      const closed = new Promise<void>((resolve) => current.close(() => resolve()));
      const timer = setTimeout(() => current.closeAllConnections(), STOP_GRACE_MS);
      await closed;
      clearTimeout(timer);
      log.info({ port: boundPort }, 'HTTPS listener stopped');
    })();
    return stopped;
  };

  return {
    mount(path, handler) {
      if (!paths.includes(path)) throw new FerryError('CONFIG_INVALID', `the HTTPS listener has no path ${path}`);
      handlers.set(path, handler);
      return () => {
        if (handlers.get(path) === handler) handlers.delete(path);
      };
    },
    mountUpgrade(path, handler) {
      upgrades.set(path, handler);
      return () => {
        if (upgrades.get(path) === handler) upgrades.delete(path);
      };
    },
    start,
    stop,
    get port() {
      return boundPort;
    },
  };
};
