import type { ExecutionContext } from 'ava';
import test from 'ava';
import Koa from 'koa';
import { createServer } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createEventBus } from '../../engine/events.ts';
import { createEventStream, type EventStreamDeps, type EventStreamOptions } from '../../engine/http/event-stream.ts';
import type { MessageSummary } from '../../engine/message.ts';
import { startTestEngine } from '../helpers/admin.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// GET /api/events: on a whole engine (a stop and a message show up), and the stream on its own
// (coalescing, pings, ending a stream whose session is gone, dropping a client that does not read).

interface SseEvent {
  event: string;
  data: any;
}

/** Reads an event stream in the background; `events` grows as they arrive. */
const follow = async (t: ExecutionContext, url: string): Promise<{ events: SseEvent[]; comments: string[]; ended: () => boolean }> => {
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const response = await fetch(url, { signal: abort.signal });
  t.is(response.status, 200);
  t.is(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  t.is(response.headers.get('cache-control'), 'no-cache, no-transform');
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let ended = false;
  void (async () => {
    let buffer = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(':')) comments.push(block);
          const event = /^event: (.+)$/m.exec(block)?.[1];
          const data = /^data: (.+)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
        }
      }
    } catch {
      // aborted
    }
    ended = true;
  })();
  return { events, comments, ended: () => ended };
};

test('the engine streams a channel event after a stop and message events after a send', async (t) => {
  const port = await freePort();
  const engine = await startTestEngine(
    t,
    channelsYaml({
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations: [{ name: archive, type: file, dir: ./out }]
  - name: lab
    source: { type: channel }
    destinations: [{ name: archive, type: file, dir: ./out-lab }]
`,
    }),
  );
  const stream = await follow(t, `${engine.base}/api/events`);
  // On connect: every channel's current state.
  await eventually(() => (stream.events.length >= 2 ? true : undefined));
  t.deepEqual(
    stream.events.slice(0, 2).map((e) => [e.event, e.data.name, e.data.state]),
    [
      ['channel', 'adt', 'running'],
      ['channel', 'lab', 'running'],
    ],
  );

  await engine.api('POST', '/api/channels/lab/stop');
  const stopped = await eventually(() => stream.events.find((e) => e.event === 'channel' && e.data.name === 'lab' && e.data.state === 'stopped'));
  t.like(stopped.data, { name: 'lab', source: 'channel', counts: { received: 0 } });

  const message = 'MSH|^~\\&|REG|HOSP|FERRY|LAB|20260101120000||ADT^A01^ADT_A01|EV1|P|2.5\rPID|1||MRN9^^^HOSP^MR||DOE^JANE\r';
  t.is((await sendForAck(openMllpClient(t, port), message)).code, 'AA');
  const sent = await eventually(() => stream.events.find((e) => e.event === 'message' && e.data.controlId === 'EV1' && e.data.status === 'sent'));
  t.like(sent.data, { channel: 'adt', messageType: 'ADT^A01^ADT_A01', sender: 'REG@HOSP', parentId: null });
  t.deepEqual(Object.keys(sent.data).sort(), ['channel', 'controlId', 'error', 'id', 'messageType', 'parentId', 'receivedAt', 'sender', 'source', 'status', 'updatedAt']);
  // The counts follow within a second.
  await eventually(() => stream.events.find((e) => e.event === 'channel' && e.data.name === 'adt' && e.data.counts.sent === 1));
});

/** An event stream on its own Koa app, with fake channels and messages. */
const standalone = async (t: ExecutionContext, deps: Partial<EventStreamDeps>, options: EventStreamOptions, alive = () => true) => {
  const bus = createEventBus();
  const errors: unknown[] = [];
  const stream = createEventStream(
    {
      bus,
      channelNames: () => ['a'],
      channelObject: async () => ({ name: 'a' }),
      messageSummary: (id) => ({ id }) as MessageSummary,
      onError: (error) => errors.push(error),
      ...deps,
    },
    options,
  );
  const app = new Koa();
  app.use((ctx) => stream.serve(ctx, alive));
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { bus, stream, errors, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
};

test('message events are coalesced per id and capped per flush; channel events only on change', async (t) => {
  let version = 1;
  const { bus, url } = await standalone(t, { channelObject: async () => ({ name: 'a', version }) }, { messageMs: 100, maxMessages: 3, channelMs: 50 });
  const stream = await follow(t, url);
  await eventually(() => (stream.events.length === 1 ? true : undefined));
  for (let i = 0; i < 5; i++) bus.publish({ kind: 'message', id: 'm1' });
  await eventually(() => (stream.events.length === 2 ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 250));
  t.deepEqual(stream.events.map((e) => [e.event, e.data.id ?? e.data.version]), [
    ['channel', 1],
    ['message', 'm1'],
  ], 'five changes of one message in one flush: one event; an unchanged channel: none');

  for (let i = 0; i < 10; i++) bus.publish({ kind: 'message', id: `n${i}` });
  version = 2;
  await eventually(() => (stream.events.length === 6 ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 250));
  t.deepEqual(
    stream.events.slice(2).map((e) => e.data.id ?? e.data.version).sort(),
    [2, 'n7', 'n8', 'n9'],
    'ten at once: the newest three, and the changed channel once',
  );
});

test('pings keep the stream open; a stream whose caller is no longer allowed ends at the next ping', async (t) => {
  let allowed = true;
  const { url, stream: hub } = await standalone(t, {}, { pingMs: 50 }, () => allowed);
  const stream = await follow(t, url);
  await eventually(() => (stream.comments.length >= 2 ? true : undefined));
  t.deepEqual(stream.comments.slice(0, 2), [': ping', ': ping']);
  t.is(hub.clients(), 1);
  allowed = false;
  await eventually(() => (stream.ended() ? true : undefined));
  t.is(hub.clients(), 0);
});

test('a client that does not read is dropped instead of buffering without bound', async (t) => {
  let version = 0;
  const big = 'x'.repeat(64 * 1024);
  const { url, stream: hub } = await standalone(t, { channelObject: async () => ({ name: 'a', version: version++, big }) }, { channelMs: 5, maxBufferedBytes: 64 * 1024 });
  const { port } = new URL(url);
  const socket = net.connect(Number(port), '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
  socket.pause(); // never reads: the kernel buffers fill, then the server's
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await eventually(() => (hub.clients() === 1 ? true : undefined));
  t.true(await eventually(() => (hub.clients() === 0 ? true : undefined), 15_000, 'the slow client to be dropped'));
  socket.resume();
  await closed;
  t.true(socket.destroyed, 'the engine closed the connection');
});
