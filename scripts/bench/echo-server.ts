// The reference the bench holds Ferry against: the least any MLLP listener can do. node:net with the
// engine's own framing (engine/hl7/mllp.ts), Nagle off, one fixed small ACK per frame in one write.
// A process of its own, like the engine: prints {"port":N} and runs until killed.

import net from 'node:net';
import { createMllpDecoder, encodeFrame } from '../../engine/hl7/mllp.ts';

const ACK = encodeFrame('MSH|^~\\&|ECHO|ECHO|||20240115083000||ACK^A01^ACK|1|P|2.5\rMSA|AA|1\r');

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  const decoder = createMllpDecoder({ maxFrameBytes: 1024 * 1024 });
  socket.on('data', (chunk: Buffer) => {
    for (const event of decoder.push(chunk)) {
      if (event.type === 'error') socket.destroy(event.error);
      else socket.write(ACK);
    }
  });
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as net.AddressInfo).port })));
