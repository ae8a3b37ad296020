import type { ExecutionContext } from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

// A plain HTTP receiver for https destinations that answers each HL7 message by its MSH-10: 200,
// 503 (a transient failure) or no answer at all, as the test decides, and records what came.

export interface Hl7Receiver {
  url: string;
  /** MSH-10 of every request, in arrival order. */
  requests: string[];
  /** MSH-10 of the requests answered 200, in order. */
  accepted: string[];
  /** MSH-10 of requests the sender cut before an answer came. */
  aborted: string[];
  /** Answered 503 while listed here. */
  refuse: Set<string>;
  /** Never answered. */
  hang: Set<string>;
}

const controlIdOf = (body: Buffer): string => body.toString('latin1').split('\r')[0]!.split('|')[9] ?? '';

/** Listens on 127.0.0.1, port 0; closed when the test ends. */
export const hl7Receiver = async (t: Pick<ExecutionContext, 'teardown'>): Promise<Hl7Receiver> => {
  const far: Omit<Hl7Receiver, 'url'> = { requests: [], accepted: [], aborted: [], refuse: new Set(), hang: new Set() };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const controlId = controlIdOf(Buffer.concat(chunks));
      far.requests.push(controlId);
      if (far.hang.has(controlId)) {
        res.on('close', () => far.aborted.push(controlId));
        return;
      }
      if (far.refuse.has(controlId)) {
        res.writeHead(503, { 'Content-Type': 'text/plain' }).end('try later');
        return;
      }
      far.accepted.push(controlId);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"Success": true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ...far };
};
