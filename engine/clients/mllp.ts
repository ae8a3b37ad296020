// Persistent MLLP client: one connection, one message in flight, reply matched to the frame just sent.
// Used by `ferry send` and the MLLP destination; it returns the reply bytes and leaves ACK codes
// to the caller (hl7/ack.ts).
import net from 'node:net';
import tls from 'node:tls';
import { checkServerIdentity } from '../auth/server-identity.ts';
import { FerryError, errorText } from '../errors.ts';
import { createMllpDecoder, encodeFrame } from '../hl7/mllp.ts';
import { createSerial } from '../serial.ts';

export interface MllpClientOptions {
  host: string;
  port: number;
  ackTimeoutMs: number;
  connectTimeoutMs?: number;
  /** Largest reply accepted; replies are ACKs, so the default is generous. */
  maxFrameBytes?: number;
  /** MLLP over TLS; the server certificate is always verified (against `ca` when given). */
  tls?: MllpTlsOptions;
}

export interface MllpTlsOptions {
  /** PEM: the CA the server must chain to; default the system CAs. */
  ca?: Buffer;
  /** PEM: client certificate and key, for servers that require one. */
  cert?: Buffer;
  key?: Buffer;
  /** Name the certificate must carry (and SNI) when it differs from `host`. */
  servername?: string;
}

export interface MllpSendOptions {
  /**
   * Judges the reply before the send resolves; when it throws, the send rejects with that error
   * and the connection is dropped before any other send can use it (a reply that names another
   * message means the stream is out of step).
   */
  verify?: (reply: Buffer) => void;
}

export interface MllpClient {
  /** Sends one framed message and resolves with the payload of the reply frame. */
  send(payload: Uint8Array | string, options?: MllpSendOptions): Promise<Buffer>;
  /** Waits for queued sends to settle, then closes the connection; safe to call twice. */
  close(): Promise<void>;
}

interface Waiter {
  socket: net.Socket;
  resolve(reply: Buffer): void;
  reject(error: Error): void;
}

export const mllpClient = (options: MllpClientOptions): MllpClient => {
  const { host, port, ackTimeoutMs, connectTimeoutMs = 10_000, maxFrameBytes = 16 * 1024 * 1024 } = options;
  const where = `${host}:${port}`;
  let socket: net.Socket | undefined;
  let waiter: Waiter | undefined;
  // Sends run one after another: MLLP has no message ids on the wire, so a reply can only be
  // matched to the frame sent last.
  const sends = createSerial();
  let closing: Promise<void> | undefined;

  // Settles the outstanding send, but only if it belongs to `from`: a connection being torn down
  // must not settle a send already running on its replacement.
  const settle = (from: net.Socket): Waiter | undefined => {
    if (waiter?.socket !== from) return undefined;
    const current = waiter;
    waiter = undefined;
    return current;
  };

  const discard = (s: net.Socket): void => {
    if (socket === s) socket = undefined;
    s.destroy();
  };

  const connect = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const secure = options.tls;
      const s = secure
        ? tls.connect({ host, port, ca: secure.ca, cert: secure.cert, key: secure.key, checkServerIdentity, ...(secure.servername ? { servername: secure.servername } : {}) })
        : net.connect({ host, port });
      s.setNoDelay(true);
      const decoder = createMllpDecoder({ maxFrameBytes });
      let connected = false;
      // TCP up but no secureConnect: the failure is the handshake (certificate, name, protocol).
      let tcpUp = false;
      s.once('connect', () => (tcpUp = true));
      let lastError: Error | undefined;
      const timer = setTimeout(
        () => s.destroy(new Error(`no connection within ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
      // Over TLS the connection is usable (and the certificate verified) only once the handshake is done.
      s.once(secure ? 'secureConnect' : 'connect', () => {
        connected = true;
        clearTimeout(timer);
        socket = s;
        resolve(s);
      });
      s.on('error', (error) => {
        lastError = error;
        if (!connected) {
          const hint = secure && tcpUp ? ' (TLS handshake failed; check tls.ca and tls.servername)' : '';
          reject(new FerryError('MLLP_CONNECT_FAILED', `cannot connect to ${where}: ${error.message}${hint}`, {
            cause: error,
            details: { host, port },
          }));
        }
      });
      s.on('data', (chunk: Buffer) => {
        for (const event of decoder.push(chunk)) {
          const current = settle(s);
          if (event.type === 'error') current?.reject(event.error);
          else current?.resolve(event.payload);
          // A frame nobody waits for (a second reply, a late one) would be taken as the answer to
          // the next message; start that one on a clean connection instead.
          if (event.type === 'error' || !current) {
            discard(s);
            return;
          }
        }
      });
      s.on('close', () => {
        clearTimeout(timer);
        if (socket === s) socket = undefined;
        const why = lastError ? `: ${errorText(lastError)}` : '';
        settle(s)?.reject(
          new FerryError('MLLP_CONNECTION_CLOSED', `${where} closed the connection before replying${why}`, {
            cause: lastError,
            details: { host, port },
          }),
        );
      });
    });

  const exchange = async (payload: Uint8Array | string, verify: MllpSendOptions['verify']): Promise<Buffer> => {
    const frame = encodeFrame(payload);
    const s = socket && !socket.destroyed && socket.writable ? socket : await connect();
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        const current = settle(s);
        if (!current) return;
        // Reset: a reply arriving after we gave up must not be matched to the next message.
        discard(s);
        current.reject(
          new FerryError('MLLP_ACK_TIMEOUT', `no reply from ${where} within ${ackTimeoutMs} ms`, {
            details: { host, port, ackTimeoutMs },
          }),
        );
      }, ackTimeoutMs);
      waiter = {
        socket: s,
        resolve: (reply) => {
          clearTimeout(timer);
          try {
            verify?.(reply);
          } catch (error) {
            // Synchronously, inside the data handler: the next send cannot have started on `s`.
            discard(s);
            reject(error as Error);
            return;
          }
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      // One write per frame: with Nagle off, a split frame costs the receiver extra round trips.
      s.write(frame);
    });
  };

  const send = (payload: Uint8Array | string, sendOptions: MllpSendOptions = {}): Promise<Buffer> => {
    if (closing) return Promise.reject(new FerryError('ENGINE_SHUTTING_DOWN', `MLLP client for ${where} is closed`));
    return sends.run(() => exchange(payload, sendOptions.verify));
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      await sends.idle();
      const s = socket;
      socket = undefined;
      if (!s || s.destroyed) return;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    })();
    return closing;
  };

  return { send, close };
};
