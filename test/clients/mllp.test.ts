import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { mllpClient, type MllpClientOptions } from '../../engine/clients/mllp.ts';
import { FerryError } from '../../engine/errors.ts';
import { encodeFrame } from '../../engine/hl7/mllp.ts';
import { mllpListener, type MllpPeer, type MllpListenerOptions } from '../../engine/sources/mllp-listener.ts';
import { mllpServer } from '../helpers/mllp-server.ts';

const msg = (id: string): string => `MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ADT^A01|${id}|P|2.5\rPID|1||${id}\r`;
const controlId = (payload: Buffer): string => /\|ADT\^A01\|([^|]+)\|/.exec(payload.toString('latin1'))?.[1] ?? '?';
const ack = (id: string): string => `MSH|^~\\&|FERRY|X|LAB|HOSP|20240101120000||ACK|A${id}|P|2.5\rMSA|AA|${id}\r`;

/** An MLLP source on `port` (0 = any) that ACKs by control id and records which connection sent what. */
const startSource = async (t: ExecutionContext, port = 0, handle?: MllpListenerOptions['handle']) => {
  const seen: Array<{ id: string; peer: MllpPeer }> = [];
  const source = mllpListener({
    host: '127.0.0.1',
    port,
    maxFrameBytes: 1024 * 1024,
    idleTimeoutMs: 10_000,
    maxConnections: 10,
    maxConnectionsPerAddress: 10,
    logger: pino({ level: 'silent' }),
    handle:
      handle ??
      (async (payload, peer) => {
        seen.push({ id: controlId(payload), peer });
        return ack(controlId(payload));
      }),
  });
  t.teardown(() => source.stop());
  await source.start();
  return { source, seen };
};

const client = (t: ExecutionContext, options: Partial<MllpClientOptions> & { port: number }) => {
  const c = mllpClient({ host: '127.0.0.1', ackTimeoutMs: 2000, ...options });
  t.teardown(() => c.close());
  return c;
};

test('round trip: replies come back in order over one connection', async (t) => {
  const { source, seen } = await startSource(t);
  const c = client(t, { port: source.port });
  for (const id of ['R1', 'R2', 'R3']) {
    const reply = await c.send(msg(id));
    t.is(reply.toString('latin1'), ack(id));
  }
  // Byte payloads pass through untouched.
  t.is((await c.send(Buffer.from(msg('R4'), 'latin1'))).toString('latin1'), ack('R4'));
  t.deepEqual(seen.map((s) => s.id), ['R1', 'R2', 'R3', 'R4']);
  t.is(new Set(seen.map((s) => s.peer.id)).size, 1);
  t.is(source.connections(), 1);
});

test('concurrent sends are serialized: one message outstanding at a time', async (t) => {
  let outstanding = 0;
  let maxOutstanding = 0;
  const server = await mllpServer(t, (socket, payload) => {
    outstanding += 1;
    maxOutstanding = Math.max(maxOutstanding, outstanding);
    setTimeout(() => {
      outstanding -= 1;
      socket.write(encodeFrame(ack(controlId(payload))));
    }, 20);
  });
  const c = client(t, { port: server.port });
  const replies = await Promise.all(['P1', 'P2', 'P3', 'P4'].map((id) => c.send(msg(id))));
  t.deepEqual(replies.map((r) => r.toString('latin1')), ['P1', 'P2', 'P3', 'P4'].map(ack));
  t.is(maxOutstanding, 1);
  t.is(server.connections(), 1);
});

test('an ACK timeout rejects, and the late reply is not taken for the next message', async (t) => {
  const { source, seen } = await startSource(t, 0, async (payload, peer) => {
    const id = controlId(payload);
    seen.push({ id, peer });
    if (id === 'SLOW') await delay(2_000);
    return ack(id);
  });
  // Generous margins: the NEXT round trip must fit in the timeout on a loaded 2-core machine.
  const c = client(t, { port: source.port, ackTimeoutMs: 700 });
  const error = await t.throwsAsync(c.send(msg('SLOW')), { instanceOf: FerryError });
  t.is(error?.code, 'MLLP_ACK_TIMEOUT');
  t.false(error?.permanent);
  const reply = await c.send(msg('NEXT'));
  t.is(reply.toString('latin1'), ack('NEXT'));
  t.deepEqual(seen.map((s) => s.id), ['SLOW', 'NEXT']);
  t.not(seen[0]?.peer.id, seen[1]?.peer.id, 'the next message went over a fresh connection');
});

test('a second, unsolicited reply makes the next message use a fresh connection', async (t) => {
  const server = await mllpServer(t, (socket, payload) => {
    const id = controlId(payload);
    socket.write(encodeFrame(ack(id)));
    if (id === 'TWICE') setTimeout(() => socket.write(encodeFrame(ack('STRAY'))), 20);
  });
  const c = client(t, { port: server.port });
  t.is((await c.send(msg('TWICE'))).toString('latin1'), ack('TWICE'));
  await delay(60);
  t.is((await c.send(msg('AFTER'))).toString('latin1'), ack('AFTER'));
  t.is(server.connections(), 2);
});

test('server down: MLLP_CONNECT_FAILED with the cause', async (t) => {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));

  const c = client(t, { port });
  const error = await t.throwsAsync(c.send(msg('X')), { instanceOf: FerryError });
  t.is(error?.code, 'MLLP_CONNECT_FAILED');
  t.false(error?.permanent);
  t.is((error?.cause as NodeJS.ErrnoException | undefined)?.code, 'ECONNREFUSED');
  t.true(error?.message.includes(`127.0.0.1:${port}`));
});

test('server restarted on the same port: the client reconnects', async (t) => {
  const first = await startSource(t);
  const port = first.source.port;
  const c = client(t, { port });
  t.is((await c.send(msg('BEFORE'))).toString('latin1'), ack('BEFORE'));
  await first.source.stop();
  const down = await t.throwsAsync(c.send(msg('DOWN')), { instanceOf: FerryError });
  // stop() closes its end without waiting for ours: the send may go out on the old connection before
  // this process has read the close (then it is closed under it), or find it gone and fail to connect.
  t.true(down?.code === 'MLLP_CONNECT_FAILED' || down?.code === 'MLLP_CONNECTION_CLOSED', down?.code);
  t.false(down?.permanent);
  const second = await startSource(t, port);
  t.is((await c.send(msg('AFTER'))).toString('latin1'), ack('AFTER'));
  t.deepEqual(second.seen.map((s) => s.id), ['AFTER']);
});

test('the peer closing while we wait rejects with a transient error', async (t) => {
  const server = await mllpServer(t, (socket) => socket.destroy());
  const c = client(t, { port: server.port });
  const error = await t.throwsAsync(c.send(msg('DROP')), { instanceOf: FerryError });
  t.is(error?.code, 'MLLP_CONNECTION_CLOSED');
  t.false(error?.permanent);
});

test('a garbled reply rejects with the framing error', async (t) => {
  const server = await mllpServer(t, (socket) => socket.write('not mllp\r\n'));
  const c = client(t, { port: server.port });
  const error = await t.throwsAsync(c.send(msg('G')), { instanceOf: FerryError });
  t.is(error?.code, 'MLLP_BAD_FRAME');
});

test('a payload that cannot be framed rejects without connecting', async (t) => {
  const server = await mllpServer(t, () => t.fail('nothing should be sent'));
  const c = client(t, { port: server.port });
  const error = await t.throwsAsync(c.send('MSH|\x1c|'), { instanceOf: FerryError });
  t.is(error?.code, 'MLLP_BAD_FRAME');
  t.is(server.connections(), 0);
});

test('close() lets a queued send finish, then refuses new sends; twice is fine', async (t) => {
  const { source } = await startSource(t);
  const c = client(t, { port: source.port });
  const pending = c.send(msg('LAST'));
  const closing = c.close();
  t.is(c.close(), closing);
  t.is((await pending).toString('latin1'), ack('LAST'));
  await closing;
  const error = await t.throwsAsync(c.send(msg('LATE')), { instanceOf: FerryError });
  t.is(error?.code, 'ENGINE_SHUTTING_DOWN');
  await delay(20);
  t.is(source.connections(), 0);
});
