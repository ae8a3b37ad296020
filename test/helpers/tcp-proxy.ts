import type { ExecutionContext } from 'ava';
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

// A TCP relay on a fixed local port that a test can take down and bring back, to make a server
// vanish (connections refused, open ones cut) and return on the same address.

export interface TcpProxy {
  readonly port: number;
  /** Stops listening and cuts every open connection: clients see resets, then refusals. */
  down(): Promise<void>;
  /** Listens on the same port again. */
  up(): Promise<void>;
}

export const tcpProxy = async (t: Pick<ExecutionContext, 'teardown'>, target: { host: string; port: number }): Promise<TcpProxy> => {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;

  const listen = async (): Promise<void> => {
    const listening = createServer((client) => {
      const upstream = createConnection(target);
      sockets.add(client).add(upstream);
      const cut = (): void => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', cut).on('close', cut);
      upstream.on('error', cut).on('close', cut);
      client.pipe(upstream).pipe(client);
    });
    listening.listen(port, '127.0.0.1');
    await once(listening, 'listening');
    port = (listening.address() as { port: number }).port;
    server = listening;
  };

  const down = async (): Promise<void> => {
    const closing = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (closing) await new Promise((resolve) => closing.close(resolve));
  };

  await listen();
  t.teardown(down);
  return {
    port,
    down,
    async up() {
      if (!server) await listen();
    },
  };
};
