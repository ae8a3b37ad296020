import type { ExecutionContext } from 'ava';
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';

// A WebSocket test client: frames are parsed and queued, `next` waits for the next one (of a type),
// `closed` resolves with the close code and reason.

export type Frame = Record<string, unknown> & { type: string };

export interface TestClient {
  ws: WebSocket;
  /** Every frame received so far, in order. */
  frames: Frame[];
  send(value: unknown): void;
  /** The next frame not yet taken (of `type`, skipping others), within `timeoutMs`. */
  next(type?: string, timeoutMs?: number): Promise<Frame>;
  /** Frames taken by nothing so far, without waiting. */
  pending(): Frame[];
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export interface ConnectOptions {
  ca?: Buffer;
  headers?: Record<string, string>;
}

/** Opens a connection; rejects with the HTTP status when the upgrade is refused. */
export const connect = (t: ExecutionContext, url: string, options: ConnectOptions = {}): Promise<TestClient> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca: options.ca, headers: options.headers, perMessageDeflate: false });
    const frames: Frame[] = [];
    let taken = 0;
    const waiters: Array<() => void> = [];
    ws.on('message', (data) => {
      frames.push(JSON.parse(data.toString()) as Frame);
      for (const wake of waiters.splice(0)) wake();
    });
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.on('close', (code, reason) => {
        done({ code, reason: reason.toString() });
        for (const wake of waiters.splice(0)) wake();
      }),
    );
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body: Buffer.concat(chunks).toString() })));
    });
    ws.on('error', reject);
    t.teardown(() => ws.terminate());

    const next = async (type?: string, timeoutMs = 5000): Promise<Frame> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (taken < frames.length) {
          const frame = frames[taken++]!;
          if (type === undefined || frame.type === type) return frame;
        }
        if (ws.readyState === WebSocket.CLOSED) throw new Error(`connection closed while waiting for ${type ?? 'a frame'}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${type ?? 'frame'} within ${timeoutMs} ms (got ${JSON.stringify(frames.slice(-3))})`);
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, left);
          waiters.push(() => {
            clearTimeout(timer);
            wake();
          });
        });
      }
    };

    ws.on('open', () => {
      ws.off('error', reject);
      ws.on('error', () => undefined);
      resolve({
        ws,
        frames,
        send: (value) => ws.send(JSON.stringify(value)),
        next,
        pending: () => frames.slice(taken),
        closed,
        close: () => ws.close(),
      });
    });
  });

/** Connects and authenticates with a first `auth` frame; returns the client and its connection id. */
export const connectAuthed = async (t: ExecutionContext, url: string, token: string, options: ConnectOptions = {}): Promise<TestClient & { connectionId: string }> => {
  const client = await connect(t, url, options);
  client.send({ type: 'auth', token });
  const welcome = await client.next('welcome');
  return Object.assign(client, { connectionId: String(welcome['connectionId']) });
};
