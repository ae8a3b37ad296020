import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { createTlsServer, reloadCertificates } from '../auth/tls-server.ts';
import { FerryError } from '../errors.ts';

export interface ListenAt {
  host: string;
  port: number;
  /** Serve HTTPS with this certificate and key (PEM files), reloaded when they change. */
  tls?: { cert: string; key: string };
}

/** An HTTP or, with `tls`, HTTPS server for `handler` (not yet listening), and what ends its certificate reload. */
const createFor = (handler: RequestListener, at: ListenAt, logger: Logger): { server: Server; stop(): void } => {
  if (!at.tls) return { server: createServer(handler), stop: () => undefined };
  const files = { ...at.tls, ca: undefined };
  const server = createTlsServer(files, 'engine.admin', (context) => createHttpsServer(context, handler));
  const reload = reloadCertificates({ files, server, logger, what: 'admin HTTPS' });
  return { server, stop: () => reload.stop() };
};

/** Binds an HTTP(S) server; a taken port becomes PORT_IN_USE naming host:port. */
export const listen = (handler: RequestListener, at: ListenAt, logger: Logger): Promise<Server> =>
  new Promise((resolve, reject) => {
    const { server, stop } = createFor(handler, at, logger);
    server.once('close', stop);
    server.once('error', (error: NodeJS.ErrnoException) => {
      stop();
      reject(
        error.code === 'EADDRINUSE'
          ? new FerryError('PORT_IN_USE', `${at.host}:${at.port} is already in use`, { cause: error })
          : error,
      );
    });
    server.listen(at.port, at.host, () => resolve(server));
  });

/** `scheme://host:port`, an IPv6 host in brackets. */
export const urlOf = (scheme: 'http' | 'https', host: string, port: number): string => `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
