import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { createChannel } from '../../engine/channel.ts';
import type { ChannelConfig } from '../../engine/config/contract.ts';
import type { MllpDestinationConfig } from '../../engine/destinations/mllp.ts';
import type { Delivery } from '../../engine/destinations/destination.ts';
import { mllpDestination } from '../../engine/destinations/mllp.ts';
import { FerryError, type ErrorCode } from '../../engine/errors.ts';
import { buildAck } from '../../engine/hl7/ack.ts';
import { readHeader } from '../../engine/hl7/header.ts';
import { createMllpDecoder, encodeFrame } from '../../engine/hl7/mllp.ts';
import { redisConnectionOptions } from '../../engine/redis/connection.ts';
import { mllpListener } from '../../engine/sources/mllp-listener.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { makeCerts } from '../https/helpers.ts';
import { captureLogger } from '../helpers/logger.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { eventually, freePort, tempDir } from '../helpers/temp.ts';

// The MLLP destination against real MLLP peers on port 0: the ACK codes and what each means for
// the retry, the MSA-2 check, ACK timeouts and connection resets, TLS; then inside a real channel
// (private Redis, message log) for retries in place, fifo order and a peer that comes up late.

const msg = (id: string): string => `MSH|^~\\&|FERRY|HOSP|EHR|HOSP|20260101120000||ADT^A01^ADT_A01|${id}|P|2.5\rPID|1||MRN-${id}\r`;
const controlIdOf = (payload: Buffer): string => readHeader(payload.toString('latin1')).controlId;

type Code = 'AA' | 'AE' | 'AR';
/** An ACK built by Ferry's own ACK builder for `payload`, with MSA-1 `code`; `acknowledged` overrides MSA-2. */
const ackFor = (payload: Buffer, code: Code | 'CA' | 'CE' | 'CR', text?: string, acknowledged?: string): string => {
  const header = readHeader(payload.toString('latin1'));
  const ack = buildAck(acknowledged === undefined ? header : { ...header, msh: header.msh.replace(`|${header.controlId}|`, `|${acknowledged}|`) }, code.replace('C', 'A') as Code, {
    ...(text ? { text } : {}),
    controlId: `ACK-${header.controlId}`,
    now: new Date(Date.UTC(2026, 0, 1)),
  });
  return code.startsWith('C') ? ack.replace(`MSA|${code.replace('C', 'A')}|`, `MSA|${code}|`) : ack;
};

interface Received {
  id: string;
  connection: number;
  payload: Buffer;
}

type Answer = (payload: Buffer, nth: number) => Promise<string | null> | string | null;

/** An MLLP peer (Ferry's own listener) that answers each frame as `answer` says and records what it got, on which connection. */
const peer = async (t: ExecutionContext, answer: Answer, port = 0) => {
  const received: Received[] = [];
  const source = mllpListener({
    host: '127.0.0.1',
    port,
    maxFrameBytes: 1024 * 1024,
    idleTimeoutMs: 30_000,
    maxConnections: 10,
    maxConnectionsPerAddress: 10,
    logger: pino({ level: 'silent' }),
    handle: async (payload, from) => {
      const id = (() => {
        try {
          return controlIdOf(payload);
        } catch {
          return payload.toString('latin1');
        }
      })();
      received.push({ id, connection: from.id, payload });
      return answer(payload, received.filter((r) => r.id === id).length);
    },
  });
  await source.start();
  t.teardown(() => source.stop());
  return { port: source.port, received, stop: () => source.stop() };
};

const config = (port: number, overrides: Partial<MllpDestinationConfig> = {}): MllpDestinationConfig => ({
  name: 'ehr',
  type: 'mllp',
  order: 'fifo',
  retry: { attempts: 5, backoff: 'fixed', delayMs: 50, maxDelayMs: 1000 },
  host: '127.0.0.1',
  port,
  tls: undefined,
  ackTimeoutMs: 2000,
  ...overrides,
});

const delivery = (content: string | Buffer, overrides: Partial<Delivery> = {}): Delivery => ({
  id: '01HZX5J3Q8M4T2V7N6B9C0D1EF',
  channel: 'adt',
  destination: 'ehr',
  output: 0,
  content: Buffer.isBuffer(content) ? content : Buffer.from(content, 'latin1'),
  controlId: null,
  receivedAt: Date.UTC(2026, 0, 1),
  ...overrides,
});

const destination = (t: ExecutionContext, cfg: MllpDestinationConfig, logger = pino({ level: 'silent' })) => {
  const d = mllpDestination(cfg, { logger });
  t.teardown(() => d.close());
  return d;
};

test('AA: sent; the stage content is the ACK text; one connection is kept for every message', async (t) => {
  const far = await peer(t, (payload) => ackFor(payload, 'AA'));
  const d = destination(t, config(far.port));
  for (const id of ['M1', 'M2', 'M3']) {
    const result = await d.send(delivery(msg(id)));
    t.is(result, ackFor(Buffer.from(msg(id), 'latin1'), 'AA'));
  }
  t.deepEqual(far.received.map((r) => r.id), ['M1', 'M2', 'M3']);
  t.is(far.received[0]!.payload.toString('latin1'), msg('M1'), 'the exact bytes went over the wire');
  t.is(new Set(far.received.map((r) => r.connection)).size, 1);
});

const verdicts: Array<{ code: 'AA' | 'CA' | 'AE' | 'CE' | 'AR' | 'CR'; error?: ErrorCode; permanent?: boolean }> = [
  { code: 'AA' },
  { code: 'CA' },
  { code: 'AE', error: 'MLLP_NAK', permanent: false },
  { code: 'CE', error: 'MLLP_NAK', permanent: false },
  { code: 'AR', error: 'MLLP_REJECTED', permanent: true },
  { code: 'CR', error: 'MLLP_REJECTED', permanent: true },
];

for (const { code, error, permanent } of verdicts) {
  test(`MSA-1 ${code}: ${error ? `${error}, ${permanent ? 'permanent' : 'transient'}` : 'sent'}`, async (t) => {
    const far = await peer(t, (payload) => ackFor(payload, code, code === 'AA' || code === 'CA' ? undefined : 'PID-3 unknown'));
    const { logger, lines } = captureLogger();
    const d = destination(t, config(far.port), logger);
    const sent = d.send(delivery(msg('X1'), { id: '01HZX5J3Q8M4T2V7N6B9C0D1EF' }));
    if (!error) {
      t.regex(await sent, new RegExp(`^MSH.*\\rMSA\\|${code}\\|X1\\r$`, 's'));
      return;
    }
    const thrown = await t.throwsAsync<FerryError>(sent, { instanceOf: FerryError });
    t.is(thrown!.code, error);
    t.is(thrown!.permanent, permanent === true);
    t.regex(thrown!.message, new RegExp(`127\\.0\\.0\\.1:${far.port} answered ${code}: PID-3 unknown`));
    t.regex(String(thrown!.details?.['ack']), new RegExp(`MSA\\|${code}\\|X1`));
    const alert = lines.find((l) => l['alert'] === true);
    if (permanent) t.regex(String(alert?.msg), new RegExp(`ALERT: .* rejected message 01HZX5J3Q8M4T2V7N6B9C0D1EF with ${code}; it will not be retried`));
    else t.is(alert, undefined);
    // A NAK is a valid answer for the message sent: the connection stays open for the next one.
    await d.send(delivery(msg('X2'))).catch(() => undefined);
    t.deepEqual(far.received.map((r) => r.id), ['X1', 'X2']);
    t.is(far.received[0]!.connection, far.received[1]!.connection);
  });
}

test('no ACK within ackTimeout: MLLP_ACK_TIMEOUT (transient); the next message goes over a fresh connection', async (t) => {
  const far = await peer(t, async (payload, nth) => {
    if (controlIdOf(payload) === 'SLOW' && nth === 1) await delay(2_500);
    return ackFor(payload, 'AA');
  });
  // Generous margins: the suite runs many engines at once on two cores.
  const d = destination(t, config(far.port, { ackTimeoutMs: 1_000 }));
  const error = await t.throwsAsync<FerryError>(d.send(delivery(msg('SLOW'))));
  t.is(error!.code, 'MLLP_ACK_TIMEOUT');
  t.false(error!.permanent);
  await delay(1_700); // the late ACK arrives, on a connection already dropped
  t.regex(await d.send(delivery(msg('NEXT'))), /MSA\|AA\|NEXT/);
  t.deepEqual(far.received.map((r) => r.id), ['SLOW', 'NEXT']);
  t.not(far.received[0]!.connection, far.received[1]!.connection);
});

test('MSA-2 names another message: MLLP_ACK_MISMATCH (transient), and the connection is reset', async (t) => {
  const far = await peer(t, (payload, nth) => (nth === 1 ? ackFor(payload, 'AA', undefined, 'SOMEONE-ELSE') : ackFor(payload, 'AA')));
  const d = destination(t, config(far.port));
  const error = await t.throwsAsync<FerryError>(d.send(delivery(msg('M7'))));
  t.is(error!.code, 'MLLP_ACK_MISMATCH');
  t.false(error!.permanent);
  t.regex(error!.message, /acknowledged "SOMEONE-ELSE", not the "M7" just sent; connection reset/);
  t.deepEqual(error!.details?.['sent'], 'M7');
  t.regex(await d.send(delivery(msg('M7'))), /MSA\|AA\|M7/);
  t.not(far.received[0]!.connection, far.received[1]!.connection, 'the retry used a new connection');
});

const notAcks: Array<[string, string]> = [
  ['HL7 without MSA', 'MSH|^~\\&|EHR|HOSP|FERRY|HOSP|20260101||ADT^A08|Z1|P|2.5\rPID|1\r'],
  ['not HL7 at all', 'OK thanks'],
];

for (const [what, reply] of notAcks) {
  test(`a reply that is ${what}: HL7_NOT_ACK (transient), connection reset`, async (t) => {
    const far = await peer(t, (payload, nth) => (nth === 1 ? reply : ackFor(payload, 'AA')));
    const d = destination(t, config(far.port));
    const error = await t.throwsAsync<FerryError>(d.send(delivery(msg('Q1'))));
    t.is(error!.code, 'HL7_NOT_ACK');
    t.false(error!.permanent);
    t.regex(error!.message, /answered something that is not an ACK/);
    t.true(error!.message.includes(reply.slice(0, 5)), error!.message);
    t.regex(await d.send(delivery(msg('Q1'))), /MSA\|AA\|Q1/);
    t.not(far.received[0]!.connection, far.received[1]!.connection);
  });
}

test('an output that is not HL7 is sent as it is; any ACK with MSA counts (no MSH-10 to match)', async (t) => {
  const far = await peer(t, () => 'MSH|^~\\&|EHR|HOSP|||20260101||ACK|A1|P|2.5\rMSA|AA|\r');
  const d = destination(t, config(far.port));
  const json = Buffer.from('{"mrn":"123","name":"Doe"}');
  t.regex(await d.send(delivery(json)), /MSA\|AA\|/);
  t.deepEqual(far.received[0]!.payload, json);
});

test('peer down: MLLP_CONNECT_FAILED (transient); sends work once it is up, on the same destination', async (t) => {
  const port = await freePort();
  const d = destination(t, config(port));
  const error = await t.throwsAsync<FerryError>(d.send(delivery(msg('E1'))));
  t.is(error!.code, 'MLLP_CONNECT_FAILED');
  t.false(error!.permanent);
  const far = await peer(t, (payload) => ackFor(payload, 'AA'), port);
  t.regex(await d.send(delivery(msg('E1'))), /MSA\|AA\|E1/);
  // The peer restarts: the dropped connection is noticed and replaced on the next send.
  await far.stop();
  const again = await peer(t, (payload) => ackFor(payload, 'AA'), port);
  await delay(50);
  t.regex(await d.send(delivery(msg('E2'))), /MSA\|AA\|E2/);
  t.deepEqual(again.received.map((r) => r.id), ['E2']);
});

/** An MLLP peer over TLS with the test CA's server certificate; answers AA to everything. */
const tlsPeer = async (t: ExecutionContext, certs: Awaited<ReturnType<typeof makeCerts>>, requireClientCert = false) => {
  const { readFile } = await import('node:fs/promises');
  const server = tls.createServer({
    cert: await readFile(certs.serverCert),
    key: await readFile(certs.serverKey),
    ...(requireClientCert ? { ca: certs.pem.ca, requestCert: true, rejectUnauthorized: true } : {}),
  });
  const peers: string[] = [];
  server.on('secureConnection', (socket) => {
    socket.on('error', () => undefined);
    const peerCert = socket.getPeerCertificate();
    peers.push(peerCert && 'subject' in peerCert && peerCert.subject ? String(peerCert.subject.CN) : '');
    const decoder = createMllpDecoder({ maxFrameBytes: 1024 * 1024 });
    socket.on('data', (chunk: Buffer) => {
      for (const event of decoder.push(chunk)) if (event.type === 'frame') socket.write(encodeFrame(ackFor(event.payload, 'AA')));
    });
  });
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => sockets.add(s));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, peers };
};

test('TLS: verified against tls.ca; without it (system CAs) or with a wrong servername the handshake fails, transiently', async (t) => {
  const certs = await makeCerts(t, []);
  const far = await tlsPeer(t, certs);
  const tlsConfig = { ca: certs.ca, cert: undefined, key: undefined, servername: undefined };
  t.regex(await destination(t, config(far.port, { tls: tlsConfig })).send(delivery(msg('T1'))), /MSA\|AA\|T1/);
  t.regex(await destination(t, config(far.port, { tls: { ...tlsConfig, servername: 'localhost' } })).send(delivery(msg('T2'))), /MSA\|AA\|T2/);

  for (const bad of [{ ...tlsConfig, ca: undefined }, { ...tlsConfig, servername: 'ehr.example.org' }]) {
    const error = await t.throwsAsync<FerryError>(destination(t, config(far.port, { tls: bad })).send(delivery(msg('T3'))));
    t.is(error!.code, 'MLLP_CONNECT_FAILED');
    t.false(error!.permanent);
    t.regex(error!.message, /TLS handshake failed; check tls\.ca and tls\.servername/);
  }
  // Plain MLLP to a TLS port gets no ACK: the peer never sees a frame.
  const plain = await t.throwsAsync<FerryError>(destination(t, config(far.port, { ackTimeoutMs: 300 })).send(delivery(msg('T4'))));
  t.true(['MLLP_ACK_TIMEOUT', 'MLLP_CONNECTION_CLOSED'].includes(plain!.code));
});

test('TLS with a client certificate, for peers that require one', async (t) => {
  const certs = await makeCerts(t, ['site-a']);
  const far = await tlsPeer(t, certs, true);
  const client = certs.clients['site-a']!;
  const d = destination(t, config(far.port, { tls: { ca: certs.ca, cert: client.cert, key: client.key, servername: undefined } }));
  t.regex(await d.send(delivery(msg('C1'))), /MSA\|AA\|C1/);
  t.deepEqual(far.peers, ['site-a']);
});

test('a tls file that cannot be read: CONFIG_INVALID when the destination is made', (t) => {
  const error = t.throws<FerryError>(() => mllpDestination(config(1, { tls: { ca: '/nonexistent/ca.crt', cert: undefined, key: undefined, servername: undefined } }), { logger: pino({ level: 'silent' }) }));
  t.is(error!.code, 'CONFIG_INVALID');
  t.regex(error!.message, /destination ehr: cannot read tls\.ca \/nonexistent\/ca\.crt/);
});

// ---------------------------------------------------------------------------------------------
// Inside a channel: the deliver loop retries in place by the error's class.

const inChannel = async (t: ExecutionContext, port: number, overrides: Partial<MllpDestinationConfig> = {}) => {
  const dir = await tempDir(t);
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const store = openMessageStore(join(dir, 'messages.db'));
  t.teardown(() => store.close());
  const channelConfig: ChannelConfig = {
    name: 'adt',
    source: { type: 'channel' },
    script: undefined,
    scriptLimits: { memoryBytes: 32 * 1024 * 1024, timeoutMs: 1000, maxOutputs: 1000 },
    concurrency: 1,
    maxQueued: 1000,
    dedupe: undefined,
    destinations: [config(port, overrides)],
  };
  const channel = createChannel(channelConfig, {
    store,
    connection: redisConnectionOptions({ path: redis.path }),
    logger: pino({ level: 'silent' }),
    services: { intakeOf: () => undefined },
  });
  t.teardown(() => channel.close());
  await channel.start();
  const accept = async (id: string): Promise<string> => {
    const result = await channel.intake.accept(Buffer.from(msg(id), 'latin1'), { source: 'test', requireHl7: true });
    if (result.kind !== 'accepted') throw new Error(`not accepted: ${result.kind}`);
    return result.id;
  };
  const stage = (id: string) => store.get(id)?.stages.find((s) => s.stage === 'ehr#0');
  const settled = (id: string) => eventually(() => (['sent', 'error'].includes(stage(id)?.status ?? '') ? stage(id) : undefined), 15_000, `message ${id} to settle`);
  return { accept, stage, settled, store };
};

test('channel: AE then AA → retried in place, sent once, the AA text in the message log', async (t) => {
  const far = await peer(t, (payload, nth) => ackFor(payload, nth === 1 ? 'AE' : 'AA', nth === 1 ? 'database busy' : undefined));
  const { accept, settled, store } = await inChannel(t, far.port);
  const id = await accept('N1');
  const stage = await settled(id);
  t.is(stage.status, 'sent');
  t.is(stage.attempts, 2);
  t.is(stage.content, ackFor(Buffer.from(msg('N1'), 'latin1'), 'AA'));
  t.is(store.load(id)?.status, 'sent');
  const acks = far.received.map((r) => r.id);
  t.deepEqual(acks, ['N1', 'N1'], 'sent twice, accepted (AA) once');
});

test('channel: AR → error at once, MLLP_REJECTED, no retry', async (t) => {
  const far = await peer(t, (payload) => ackFor(payload, 'AR', 'unknown patient'));
  const { accept, settled } = await inChannel(t, far.port);
  const id = await accept('R1');
  const stage = await settled(id);
  t.is(stage.status, 'error');
  t.is(stage.attempts, 1);
  t.regex(stage.error ?? '', /^MLLP_REJECTED: 127\.0\.0\.1:\d+ answered AR: unknown patient/);
  await delay(300);
  t.is(far.received.length, 1, 'never sent again');
});

test('channel: ACK timeout → retried on a fresh connection, then sent', async (t) => {
  const far = await peer(t, async (payload, nth) => {
    if (nth === 1) await delay(2_500);
    return ackFor(payload, 'AA');
  });
  const { accept, settled } = await inChannel(t, far.port, { ackTimeoutMs: 1_000 });
  const stage = await settled(await accept('S1'));
  t.is(stage.status, 'sent');
  t.is(stage.attempts, 2);
  t.is(far.received.length, 2);
  t.not(far.received[0]!.connection, far.received[1]!.connection);
});

test('channel: MSA-2 mismatch → retried on a fresh connection, then sent', async (t) => {
  const far = await peer(t, (payload, nth) => ackFor(payload, 'AA', undefined, nth === 1 ? 'OTHER' : undefined));
  const { accept, settled } = await inChannel(t, far.port);
  const stage = await settled(await accept('W1'));
  t.is(stage.status, 'sent');
  t.is(stage.attempts, 2);
  t.not(far.received[0]!.connection, far.received[1]!.connection);
});

test('channel: peer down → queued and retried, delivered once it comes up', async (t) => {
  const port = await freePort();
  const { accept, stage, settled } = await inChannel(t, port, { retry: { attempts: 0, backoff: 'fixed', delayMs: 100, maxDelayMs: 1000 } });
  const id = await accept('D1');
  const queued = await eventually(() => ((stage(id)?.attempts ?? 0) >= 2 ? stage(id) : undefined), 10_000, 'two failed attempts');
  t.is(queued.status, 'queued');
  t.regex(queued.error ?? '', /^MLLP_CONNECT_FAILED: cannot connect to 127\.0\.0\.1:\d+/);
  const far = await peer(t, (payload) => ackFor(payload, 'AA'), port);
  const sent = await settled(id);
  t.is(sent.status, 'sent');
  t.deepEqual(far.received.map((r) => r.id), ['D1']);
});

test('channel, fifo: a message NAKed twice holds back the ones after it; the peer accepts them in order', async (t) => {
  const accepted: string[] = [];
  const far = await peer(t, (payload, nth) => {
    const id = controlIdOf(payload);
    if (id === 'F2' && nth <= 2) return ackFor(payload, 'AE', 'try again');
    accepted.push(id);
    return ackFor(payload, 'AA');
  });
  const { accept, settled } = await inChannel(t, far.port);
  const ids = [];
  for (const n of [1, 2, 3, 4, 5]) ids.push(await accept(`F${n}`));
  for (const id of ids) t.is((await settled(id)).status, 'sent');
  t.deepEqual(accepted, ['F1', 'F2', 'F3', 'F4', 'F5']);
  t.deepEqual(far.received.map((r) => r.id), ['F1', 'F2', 'F2', 'F2', 'F3', 'F4', 'F5']);
});
