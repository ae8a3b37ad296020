import { createServer, type RequestListener, type Server } from 'node:http';
import { FerryError } from '../errors.ts';

/** Binds an HTTP server; a taken port becomes PORT_IN_USE naming host:port. */
export const listen = (handler: RequestListener, at: { host: string; port: number }): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer(handler);
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new FerryError('PORT_IN_USE', `${at.host}:${at.port} is already in use`, { cause: error })
          : error,
      );
    });
    server.listen(at.port, at.host, () => resolve(server));
  });
