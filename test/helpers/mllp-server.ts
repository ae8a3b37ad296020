import type { ExecutionContext } from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { buildAck } from '../../engine/hl7/ack.ts';
import { readHeader } from '../../engine/hl7/header.ts';
import { createMllpDecoder, encodeFrame } from '../../engine/hl7/mllp.ts';

// The far end of an MLLP link, for tests where Ferry sends (its MLLP client, an MLLP destination): a
// bare TCP server that unframes what arrives and answers however the test says. Not Ferry's own MLLP
// source, so that a test can also answer wrongly: late, twice, garbage, or by cutting the line.

export interface TestMllpServer {
  port: number;
  /** Connections accepted so far (closed ones included): how often the sender connected. */
  connections(): number;
}

/**
 * Listens on 127.0.0.1:`port` (0: any free port) and calls `onFrame` with each MLLP frame's payload
 * and the socket it came on; stops listening and cuts every connection when the test ends.
 */
export const mllpServer = async (
  t: Pick<ExecutionContext, 'teardown'>,
  onFrame: (socket: net.Socket, payload: Buffer) => void,
  port = 0,
): Promise<TestMllpServer> => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const decoder = createMllpDecoder({ maxFrameBytes: 1024 * 1024 });
    socket.on('data', (chunk: Buffer) => {
      for (const event of decoder.push(chunk)) if (event.type === 'frame') onFrame(socket, event.payload);
    });
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.close();
    for (const socket of sockets) socket.destroy();
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => sockets.size };
};

/**
 * An MLLP server that accepts everything: each message gets an AA built by Ferry's own ACK builder from
 * its MSH, with control id ACK<n> for the n-th message and dated 2026-01-01 so a test can pin its
 * bytes. `received` is the messages' control ids in the order they arrived.
 */
export const acceptingMllpServer = async (t: Pick<ExecutionContext, 'teardown'>, port = 0): Promise<TestMllpServer & { received: string[] }> => {
  const received: string[] = [];
  const server = await mllpServer(
    t,
    (socket, payload) => {
      const header = readHeader(payload.toString('latin1'));
      received.push(header.controlId);
      socket.write(encodeFrame(buildAck(header, 'AA', { controlId: `ACK${received.length}`, now: new Date(Date.UTC(2026, 0, 1)) })));
    },
    port,
  );
  return { ...server, received };
};
