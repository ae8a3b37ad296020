import net from 'node:net';

// Whether a channel's listener is really open or closed (after a stop, a shutdown, a failed start) is
// best seen the way a sender sees it: by connecting.

/** Connects to 127.0.0.1:`port` and hangs up: 'connected', or the error code (ECONNREFUSED when nothing listens). */
export const connectOutcome = (port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
