// MLLP listener: accepts HL7 senders over TCP (or TLS), hands each frame to `handle` and writes back
// the reply (the ACK) it returns. Framing is hl7/mllp.ts; this file is only sockets and their lifecycle.
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { createTlsServer, reloadCertificates, type CertificateReload } from '../auth/tls-server.ts';
import { FerryError, errorText } from '../errors.ts';
import { createMllpDecoder, encodeFrame } from '../hl7/mllp.ts';
import { logThrottle } from '../log-throttle.ts';

export interface MllpPeer {
  remoteAddress: string;
  remotePort: number;
  /** Connection number, unique within this listener; ties log lines of one connection together. */
  id: number;
  /** Over TLS with clientCert: require, the CN of the sender's certificate. */
  clientName?: string;
}

/** MLLP over TLS; absolute paths of PEM files. */
export interface MllpListenerTls {
  cert: string;
  key: string;
  ca: string | undefined;
  clientCert: 'none' | 'require';
}

/** What a channel's `mllp` source configures (sources/mllp.ts). */
export interface MllpListenerSettings {
  host: string;
  port: number;
  maxFrameBytes: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  tls?: MllpListenerTls;
}

/** The settings, and what the listener reports to. */
export interface MllpListenerOptions extends MllpListenerSettings {
  logger: Logger;
  /**
   * Returns the reply to frame back to the sender, or null when the frame is not a message (an
   * inbound ACK, which must never be ACKed): no reply, and it does not keep the connection from idling.
   */
  handle: (payload: Buffer, peer: MllpPeer) => Promise<Uint8Array | string | null>;
}

export interface MllpListener {
  start(): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
  /** The bound port once started (the real one when configured as 0). */
  readonly port: number;
  connections(): number;
}

// How long stop() lets in-flight messages finish and reach their senders before cutting connections.
const STOP_GRACE_MS = 5000;
// A connection flood is logged once per interval with a count, not once per refused connection.
const REFUSED_LOG_INTERVAL_MS = 10_000;
const REFUSED_LOG_INTERVAL = `${REFUSED_LOG_INTERVAL_MS / 1000} s`;
const TOO_MANY = 'MLLP_TOO_MANY_CONNECTIONS';
// A TLS client must finish its handshake within this; until then it holds no connection slot.
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The listening server: plain TCP, or TLS whose handshake refuses clients without a trusted certificate when required. */
const createServer = (config: MllpListenerTls | undefined): net.Server => {
  // Half-open allowed so a sender that shuts down its side right after its last frame still gets the ACK.
  if (!config) return net.createServer({ allowHalfOpen: true });
  const required = config.clientCert === 'require';
  return createTlsServer(config, 'MLLP tls', (context) =>
    tls.createServer({ ...context, allowHalfOpen: true, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS, requestCert: required, rejectUnauthorized: required }),
  );
};

interface Connection {
  socket: net.Socket;
  busy: boolean;
  /** The sender half-closed; answer what it sent, then close our side too. */
  peerEnded: boolean;
}

export const mllpListener = (options: MllpListenerOptions): MllpListener => {
  const { maxFrameBytes, idleTimeoutMs, maxConnections, maxConnectionsPerAddress, logger, handle } = options;
  const server = createServer(options.tls);
  let reload: CertificateReload | undefined;
  const open = new Set<Connection>();
  // Open connections by remote address, for maxConnectionsPerAddress; an address leaves with its last one.
  const perAddress = new Map<string, number>();
  let nextId = 1;
  let boundPort = options.port;
  let stopping = false;
  let started: Promise<{ host: string; port: number }> | undefined;
  let stopped: Promise<void> | undefined;
  let allClosed: (() => void) | undefined;
  // Refusals: the first of each interval is logged with the peer; the rest are summed up at its end.
  const refusedAtCap = logThrottle(REFUSED_LOG_INTERVAL_MS, ({ count, keys }) =>
    logger.warn(
      { code: TOO_MANY, maxConnections, refused: count, addresses: keys },
      `MLLP listener at its connection cap: ${count} more connections refused in the last ${REFUSED_LOG_INTERVAL}`,
    ),
  );
  const refusedForAddress = logThrottle(REFUSED_LOG_INTERVAL_MS, ({ count, keys }) =>
    logger.warn(
      { code: TOO_MANY, maxConnectionsPerAddress, refused: count, addresses: keys },
      `MLLP per-address connection limit: ${count} more connections refused in the last ${REFUSED_LOG_INTERVAL} (from ${keys.join(', ')})`,
    ),
  );

  const serve = (socket: net.Socket): void => {
    const peer: MllpPeer = {
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      id: nextId++,
    };
    if (socket instanceof tls.TLSSocket && socket.authorized) {
      const cn = socket.getPeerCertificate().subject?.CN;
      if (typeof cn === 'string') peer.clientName = cn;
    }
    const log = logger.child({ conn: peer.id, peer: `${peer.remoteAddress}:${peer.remotePort}` });
    socket.on('error', (error: NodeJS.ErrnoException) => log.info({ err: error, code: error.code }, 'MLLP connection error'));

    if (stopping) {
      socket.destroy();
      return;
    }
    // The address first: one sender holding its share is refused as such, even when the listener is full too.
    const { remoteAddress: address } = peer;
    const held = perAddress.get(address) ?? 0;
    if (held >= maxConnectionsPerAddress) {
      if (refusedForAddress.admit(address)) {
        log.warn(
          { code: TOO_MANY, address, maxConnectionsPerAddress },
          `MLLP connection refused: ${address} already holds ${held} connections, its maximum (maxConnectionsPerAddress)`,
        );
      }
      socket.destroy();
      return;
    }
    if (open.size >= maxConnections) {
      if (refusedAtCap.admit(address)) log.warn({ code: TOO_MANY, address, maxConnections }, 'MLLP connection refused: listener at its connection cap');
      socket.destroy();
      return;
    }
    perAddress.set(address, held + 1);

    // Nagle would hold each small ACK back until the sender's delayed ACK fires (~40 ms a message).
    socket.setNoDelay(true);
    const conn: Connection = { socket, busy: false, peerEnded: false };
    open.add(conn);
    const decoder = createMllpDecoder({ maxFrameBytes });
    // Frames received while a message is being handled. Reading is paused while this is non-empty,
    // so it holds at most one read chunk's frames (each at most maxFrameBytes) plus one partial frame.
    const queue: Buffer[] = [];

    // Set once the connection is being closed for a reason already logged.
    let closeLogged = false;
    // Frames that were not messages (no reply: inbound ACKs) since the last message, for the idle line.
    let ignored = 0;
    // The idle timeout passed while a frame was being handled: what that frame was decides.
    let idleDue = false;
    // Idle means no message answered and none in progress. Neither a sender that trickles a frame byte
    // by byte nor one that sends only ACKs (never answered) can hold a connection slot (and a buffer)
    // forever, and the one that does either is told apart in the log from a sender that went quiet.
    const closeIdle = (): void => {
      const unfinished = decoder.pending();
      closeLogged = true;
      if (unfinished === 0 && ignored === 0) log.info({ code: 'MLLP_IDLE_TIMEOUT', idleTimeoutMs }, 'closing idle MLLP connection');
      else {
        const why = [
          unfinished > 0 && `${unfinished} bytes of an unfinished frame discarded`,
          ignored > 0 && `${ignored} frames ignored since the last message: ACKs, which are not messages`,
        ].filter(Boolean);
        log.warn(
          { code: 'MLLP_IDLE_TIMEOUT', idleTimeoutMs, unfinished, ignored },
          `closing MLLP connection: no complete message within ${idleTimeoutMs} ms (${why.join('; ')})`,
        );
      }
      socket.destroy();
    };
    const idle = setTimeout(() => {
      if (conn.busy) idleDue = true;
      else closeIdle();
    }, idleTimeoutMs);

    // Strictly one message at a time per connection: frame N+1 is handled only after N's reply was
    // written, which keeps order for senders that pipeline instead of waiting for each ACK.
    const pump = async (): Promise<void> => {
      conn.busy = true;
      // Whether a frame handled in this run was a message (answered), which is what keeps a connection open.
      let answered = false;
      try {
        for (let payload = queue.shift(); payload !== undefined; payload = queue.shift()) {
          if (stopping || socket.destroyed) break;
          const reply = await handle(payload, peer);
          if (reply === null) {
            ignored += 1;
            continue;
          }
          answered = true;
          ignored = 0;
          if (!socket.writable) continue;
          // One write per reply: a frame split over writes waits on Nagle/delayed-ACK at the sender.
          if (!socket.write(encodeFrame(reply))) await drained(socket);
        }
      } catch (error) {
        log.error({ err: error }, 'MLLP message handler failed; closing the connection');
        socket.destroy();
      }
      conn.busy = false;
      if (stopping) endThenClose(socket);
      else if (conn.peerEnded) socket.end();
      else if (socket.destroyed) return; // closed meanwhile; refreshing would re-arm the cleared timer
      else if (answered) {
        idleDue = false;
        idle.refresh();
        socket.resume();
      } else if (idleDue) closeIdle();
      else socket.resume();
    };

    socket.on('data', (chunk: Buffer) => {
      for (const event of decoder.push(chunk)) {
        if (event.type === 'error') {
          closeLogged = true;
          log.warn({ code: event.error.code, err: event.error }, `closing MLLP connection: ${event.error.message}`);
          socket.destroy();
          return;
        }
        queue.push(event.payload);
      }
      if (queue.length === 0) return;
      if (conn.busy) socket.pause();
      else void pump();
    });

    socket.on('end', () => {
      conn.peerEnded = true;
      if (!conn.busy) socket.end();
    });

    socket.on('close', () => {
      clearTimeout(idle);
      open.delete(conn);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
      const unfinished = decoder.pending();
      if (unfinished > 0 && !closeLogged && !stopping) {
        log.warn(
          { code: 'MLLP_BAD_FRAME', unfinished },
          `MLLP connection closed in the middle of a frame: ${unfinished} bytes without an end block discarded, nothing stored`,
        );
      } else log.debug('MLLP connection closed');
      if (open.size === 0) allClosed?.();
    });
    log.debug('MLLP connection opened');
  };

  // Every accepted socket until it closes, served or not: server.close() waits for all of them, and
  // over TLS a socket is served (in `open`) only once its handshake succeeded.
  const accepted = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    accepted.add(socket);
    socket.once('close', () => accepted.delete(socket));
  });

  // Over TLS a connection is served once its handshake succeeded; failed handshakes are logged.
  if (options.tls) {
    server.on('secureConnection', serve);
    server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      // Node leaves the socket of a failed handshake open, a timed-out one too: it would hold a
      // connection (and stop()) until the client goes away.
      socket.destroy();
      if (stopping) return; // a handshake cut by stop() is not the sender's failure
      logger.info({ err: error, code: error.code, peer: `${socket.remoteAddress}:${socket.remotePort}` }, `MLLP TLS handshake failed: ${errorText(error)}`);
    });
  } else server.on('connection', serve);

  const start = (): Promise<{ host: string; port: number }> => {
    started ??= new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        const why = error.code === 'EADDRINUSE' ? 'address already in use' : (error.code ?? error.message);
        reject(new FerryError('PORT_IN_USE', `MLLP listener cannot bind ${options.host}:${options.port}: ${why}`, {
          cause: error,
          details: { host: options.host, port: options.port },
        }));
      };
      server.once('error', onError);
      server.listen(options.port, options.host, () => {
        server.off('error', onError);
        server.on('error', (error) => logger.error({ err: error }, 'MLLP listener error'));
        boundPort = (server.address() as net.AddressInfo).port;
        if (options.tls) reload = reloadCertificates({ files: options.tls, server: server as tls.Server, logger, what: 'MLLP' });
        logger.info({ host: options.host, port: boundPort, ...(options.tls && { tls: true, clientCert: options.tls.clientCert }) }, 'MLLP listener started');
        resolve({ host: options.host, port: boundPort });
      });
    });
    return started;
  };

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      // Say now how many were refused in the interval under way, rather than after the listener stopped.
      refusedForAddress.flush();
      refusedAtCap.flush();
      if (started) await started.catch(() => undefined);
      reload?.stop();
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Busy connections are closed once their in-flight reply is written (see pump).
      for (const conn of open) if (!conn.busy) endThenClose(conn.socket);
      if (open.size > 0) {
        const drainedAll = new Promise<void>((resolve) => (allClosed = resolve));
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)));
        await Promise.race([drainedAll, grace]);
        clearTimeout(timer);
        for (const conn of open) conn.socket.destroy();
      }
      // What is left was never served, a TLS handshake still going on: nothing to wait for.
      for (const socket of accepted) socket.destroy();
      await closed;
      logger.info({ host: options.host, port: boundPort }, 'MLLP listener stopped');
    })();
    return stopped;
  };

  return {
    start,
    stop,
    get port() {
      return boundPort;
    },
    connections: () => open.size,
  };
};

/**
 * At stop: ends our side, then closes the socket once the end has finished, that is once everything
 * written before (the in-flight reply) has been handed to the OS, which still delivers it. With
 * allowHalfOpen, a peer that keeps its own side open would otherwise hold the connection (and stop())
 * until the grace runs out.
 */
const endThenClose = (socket: net.Socket): void => {
  socket.end(() => socket.destroy());
};

/** Resolves when the socket can take more writes, or is gone. */
const drained = (socket: net.Socket): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
