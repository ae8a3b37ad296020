import type { IncomingMessage } from 'node:http';

// Reads a request body up to a limit, counting bytes as they arrive: a body over the limit is
// refused as soon as it crosses it, never buffered whole. What it has not read stays unread; the
// caller answers with `Connection: close`, so the rest of an oversized upload is never taken in.

export type BodyResult =
  | { kind: 'ok'; body: Buffer }
  | { kind: 'too-large'; received: number }
  /** The body did not match its Content-Length. */
  | { kind: 'length-mismatch'; declared: number; received: number }
  /** The client went away before the end of the body. */
  | { kind: 'aborted'; received: number };

export const readBody = (req: IncomingMessage, maxBytes: number): Promise<BodyResult> =>
  new Promise((resolve) => {
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (result: BodyResult): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > maxBytes) {
        req.pause();
        finish({ kind: 'too-large', received });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      if (declared !== undefined && declared !== received) finish({ kind: 'length-mismatch', declared, received });
      else finish({ kind: 'ok', body: Buffer.concat(chunks, received) });
    };
    const onGone = (): void => finish({ kind: 'aborted', received });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
