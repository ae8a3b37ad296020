import { readFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { reloadCertificates, serverContext } from '../auth/certificate-reload.ts';
import { FerryError, errorText } from '../errors.ts';

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
  let server: ReturnType<typeof createHttpsServer>;
  try {
    server = createHttpsServer(serverContext({ cert: readFileSync(files.cert), key: readFileSync(files.key), ca: undefined }), handler);
  } catch (cause) {
    throw new FerryError('CONFIG_INVALID', `the certificate ${files.cert} or its key ${files.key} cannot be used: ${errorText(cause as Error)}`, { cause });
  }
  const reload = reloadCertificates({ files, apply: (material) => server.setSecureContext(serverContext(material)), logger, what: 'admin HTTPS' });
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
