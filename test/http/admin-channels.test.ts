import test from 'ava';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { startTestEngine, type TestEngine } from '../helpers/admin.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { connectOutcome } from '../helpers/listener.ts';
import { sendOnce } from '../helpers/mllp.ts';
import { channelsYaml } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// Start, stop and resend on a whole engine: listeners really close, queued work really waits and
// flows again, a resend is a new message that is delivered.

const hl7 = (controlId: string, mrn: string): string => adtMessage({ controlId, mrn, brief: true });

const config = (port: number): string =>
  channelsYaml({
    channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: archive, type: file, dir: ./out/adt, filename: "{controlId}-{id}.hl7" }
      - { name: to-lab, type: channel, channel: lab }
  - name: lab
    source: { type: channel }
    destinations:
      - { name: files, type: file, dir: ./out/lab }
`,
  });

const setup = async (t: Parameters<typeof startTestEngine>[0]): Promise<TestEngine & { port: number; send(controlId: string, mrn: string): Promise<string> }> => {
  const port = await freePort();
  const engine = await startTestEngine(t, config(port));
  return {
    ...engine,
    port,
    send: async (controlId, mrn) => (await sendOnce(port, hl7(controlId, mrn))).code,
  };
};

/** Delivered files; dot-files are the file destination's temp files, not yet renamed into place. */
const files = async (dir: string): Promise<string[]> => (await readdir(dir).catch(() => [])).filter((name) => !name.startsWith('.'));

const messageOf = async (engine: TestEngine, q: string, channel: string): Promise<any> =>
  (await engine.api('GET', `/api/messages?q=${q}&channel=${channel}`)).body.items[0];

test('stop closes the MLLP listener (connect refused) and start opens it again', async (t) => {
  const engine = await setup(t);
  t.is(await engine.send('A1', 'MRN1'), 'AA');

  const stopped = Date.now();
  const stop = await engine.api('POST', '/api/channels/adt/stop');
  t.log(`stop took ${Date.now() - stopped} ms`);
  t.is(stop.status, 200);
  t.like(stop.body, { name: 'adt', state: 'stopped', source: `mllp 127.0.0.1:${engine.port}` });
  t.is(await connectOutcome(engine.port), 'ECONNREFUSED');
  t.is((await engine.api('GET', '/api/channels/adt')).body.state, 'stopped');
  t.is((await engine.api('POST', '/api/channels/adt/stop')).body.state, 'stopped', 'stopping twice is harmless');

  const started = Date.now();
  const start = await engine.api('POST', '/api/channels/adt/start');
  t.log(`start took ${Date.now() - started} ms`);
  t.like(start.body, { name: 'adt', state: 'running' });
  t.is(await engine.send('A2', 'MRN2'), 'AA');
  const archived = await eventually(async () => ((await files(join(engine.dir, 'out/adt'))).length === 2 ? files(join(engine.dir, 'out/adt')) : undefined));
  t.deepEqual(archived.map((f) => f.slice(0, 3)).sort(), ['A1-', 'A2-']);
});

test('a hand-off to a stopped channel is committed to its queue, waits, and flows on start', async (t) => {
  const engine = await setup(t);
  t.is((await engine.api('POST', '/api/channels/lab/stop')).body.state, 'stopped');
  t.is(await engine.send('H1', 'MRN77'), 'AA');

  // adt delivers both ways; lab holds the hand-off in its inbound queue without processing it.
  await eventually(async () => ((await messageOf(engine, 'MRN77', 'adt'))?.status === 'sent' ? true : undefined));
  const waiting = await engine.api('GET', '/api/channels/lab');
  t.like(waiting.body, { state: 'stopped', queues: { inbound: 1, files: 0 }, counts: { received: 1, queued: 1, sent: 0 } });
  t.is((await messageOf(engine, 'MRN77', 'lab')).status, 'received');
  t.deepEqual(await files(join(engine.dir, 'out/lab')), []);

  t.is((await engine.api('POST', '/api/channels/lab/start')).body.state, 'running');
  const written = await eventually(async () => {
    const found = await files(join(engine.dir, 'out/lab'));
    return found.length > 0 ? found : undefined;
  });
  t.is(await readFile(join(engine.dir, 'out/lab', written[0]!), 'latin1'), hl7('H1', 'MRN77'));
  await eventually(async () => ((await messageOf(engine, 'MRN77', 'lab'))?.status === 'sent' ? true : undefined));
});

test('resend: a new message with parentId, logged before the 201, delivered — also into a stopped channel, on start', async (t) => {
  const engine = await setup(t);
  t.is(await engine.send('R1', 'MRN55'), 'AA');
  const original = await eventually(async () => {
    const m = await messageOf(engine, 'MRN55', 'adt');
    return m?.status === 'sent' ? m : undefined;
  });

  const resend = await engine.api('POST', `/api/messages/${original.id}/resend`);
  t.is(resend.status, 201);
  t.deepEqual(Object.keys(resend.body), ['id']);
  t.not(resend.body.id, original.id);
  const copy = (await engine.api('GET', `/api/messages/${resend.body.id}`)).body;
  t.like(copy, { channel: 'adt', parentId: original.id, source: 'resend by (open mode)', controlId: 'R1', text: hl7('R1', 'MRN55') });
  await eventually(async () => ((await engine.api('GET', `/api/messages/${resend.body.id}`)).body.status === 'sent' ? true : undefined));
  t.is(await readFile(join(engine.dir, 'out/adt', `R1-${resend.body.id}.hl7`), 'latin1'), hl7('R1', 'MRN55'));

  // Into a stopped channel: accepted and queued; it waits for the start.
  await engine.api('POST', '/api/channels/adt/stop');
  const queued = await engine.api('POST', `/api/messages/${original.id}/resend`);
  t.is(queued.status, 201);
  t.like((await engine.api('GET', '/api/channels/adt')).body, { state: 'stopped', queues: { inbound: 1 } });
  await engine.api('POST', '/api/channels/adt/start');
  await eventually(async () => ((await engine.api('GET', `/api/messages/${queued.body.id}`)).body.status === 'sent' ? true : undefined));

  const audit = (await engine.api('GET', '/api/audit')).body;
  t.deepEqual(
    audit.map((e: any) => [e.user, e.action, e.target, e.detail]),
    [
      ['(open mode)', 'start', 'adt', null],
      ['(open mode)', 'resend', original.id, `as ${queued.body.id}`],
      ['(open mode)', 'stop', 'adt', null],
      ['(open mode)', 'resend', original.id, `as ${resend.body.id}`],
    ],
  );

  t.deepEqual(await engine.api('POST', '/api/messages/01HZX5J3Q8M4T2V7N6B9C0D1EF/resend'), {
    status: 404,
    body: { error: { code: 'MESSAGE_NOT_FOUND', message: 'no message 01HZX5J3Q8M4T2V7N6B9C0D1EF' } },
  });
});

test('a resend the channel cannot take: refused content 422 with its code, an ACK 422, a full channel 503; none audited', async (t) => {
  const port = await freePort();
  const engine = await startTestEngine(
    t,
    channelsYaml({
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    maxQueued: 1
    destinations:
      - { name: archive, type: file, dir: ./out/adt }
`,
    }),
  );
  // Not HL7 on an MLLP channel: refused (AR), and logged as an error.
  t.is((await sendOnce(port, 'PID|1||X')).code, 'AR');
  const refused = (await engine.api('GET', '/api/messages?channel=adt&status=error')).body.items[0];
  t.deepEqual(await engine.api('POST', `/api/messages/${refused.id}/resend`), {
    status: 422,
    body: { error: { code: 'HL7_NOT_HL7', message: 'the message does not start with an MSH segment' } },
  });

  // An ACK in the log (intake never logs one; an older release might have): channels ignore ACKs.
  const ack = 'MSH|^~\\&|LAB|HOSP|REG|HOSP|20260101120000||ACK^A01^ACK|A1|P|2.5\rMSA|AA|MSG1\r';
  const logged = { id: '01HZX5J3Q8M4T2V7N6B9C0D1EA', channel: 'adt', source: 'test', raw: Buffer.from(ack), text: ack, charset: 'UNICODE UTF-8' };
  await engine.engine.store.reject(logged, 'logged as an error, so it does not count towards maxQueued');
  t.deepEqual(await engine.api('POST', '/api/messages/01HZX5J3Q8M4T2V7N6B9C0D1EA/resend'), {
    status: 422,
    body: { error: { code: 'API_BAD_REQUEST', message: 'the message is an HL7 acknowledgement; channels ignore those' } },
  });

  // A stopped channel at maxQueued: 1 takes one resend into its queue, then refuses until it drains.
  t.is((await sendOnce(port, hl7('F1', 'MRN61'))).code, 'AA');
  const original = await eventually(async () => {
    const m = await messageOf(engine, 'MRN61', 'adt');
    return m?.status === 'sent' ? m : undefined;
  });
  await engine.api('POST', '/api/channels/adt/stop');
  const queued = await engine.api('POST', `/api/messages/${original.id}/resend`);
  t.is(queued.status, 201);
  const full = await engine.api('POST', `/api/messages/${original.id}/resend`);
  t.is(full.status, 503);
  t.is(full.body.error.code, 'QUEUE_FULL');
  t.regex(full.body.error.message, /^channel adt holds 1 unfinished messages \(maxQueued 1\); resend later$/);

  const audit = (await engine.api('GET', '/api/audit')).body;
  t.deepEqual(audit.map((e: any) => [e.action, e.target, e.detail]), [
    ['resend', original.id, `as ${queued.body.id}`],
    ['stop', 'adt', null],
  ]);
});

test('bulk resend: oldest first whatever the order given, each reported; unknown ids fail alone; bad bodies are 400', async (t) => {
  const engine = await setup(t);
  for (const n of [1, 2, 3]) t.is(await engine.send(`B${n}`, `MRNB${n}`), 'AA');
  const ids = await eventually(async () => {
    const found = await Promise.all([1, 2, 3].map((n) => messageOf(engine, `MRNB${n}`, 'adt')));
    return found.every((m) => m?.status === 'sent') ? found.map((m) => m.id as string) : undefined;
  });
  const post = async (body: unknown, type = 'application/json') => {
    const response = await fetch(`${engine.base}/api/messages/resend`, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(body) });
    return { status: response.status, body: await response.json() };
  };

  const unknown = '01HZX5J3Q8M4T2V7N6B9C0D1EF';
  const result = await post({ ids: [ids[2], unknown, ids[0], ids[1], ids[0]] });
  t.is(result.status, 200);
  t.deepEqual(result.body.resent.map((r: { id: string }) => r.id), ids, 'oldest first, each once');
  t.deepEqual(result.body.failed, [{ id: unknown, error: { code: 'MESSAGE_NOT_FOUND', message: `no message ${unknown}` } }]);
  const copies = await Promise.all(result.body.resent.map(async (r: { as: string }) => (await engine.api('GET', `/api/messages/${r.as}`)).body));
  t.deepEqual(copies.map((c) => [c.controlId, c.parentId, c.source]), ids.map((id, i) => [`B${i + 1}`, id, 'resend by (open mode)']));
  t.deepEqual(copies.map((c) => c.receivedAt), copies.map((c) => c.receivedAt).sort(), 'received again in their first order');
  await eventually(async () => {
    const states = await Promise.all(result.body.resent.map(async (r: { as: string }) => (await engine.api('GET', `/api/messages/${r.as}`)).body.status));
    return states.every((s) => s === 'sent') ? true : undefined;
  });

  for (const body of [{}, { ids: [] }, { ids: 'x' }, { ids: [1] }, { ids: Array.from({ length: 501 }, (_, i) => `m${i}`) }]) {
    t.deepEqual(await post(body), { status: 400, body: { error: { code: 'API_BAD_REQUEST', message: 'ids must be a list of 1 to 500 message ids' } } }, JSON.stringify(body).slice(0, 40));
  }
  t.deepEqual(await post({ ids: [ids[0]] }, 'text/plain'), { status: 400, body: { error: { code: 'API_BAD_REQUEST', message: 'send the body as application/json' } } });
});

test('resend of a file-source message decodes it with the source\'s encoding, as on arrival', async (t) => {
  // 8859/15 without MSH-18: only the configured encoding says that byte 0xA4 is € (in 8859/1 it is ¤).
  const engine = await startTestEngine(
    t,
    channelsYaml({
      channels: `  - name: lab
    source: { type: file, dir: ./inbox, pollInterval: 100ms, encoding: 8859/15 }
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "{id}.hl7" }
`,
    }),
  );
  const text = 'MSH|^~\\&|LAB|REF|EHR|HOSP|20260101120000||DFT^P03^DFT_P03|E1|P|2.5\rPID|1||MRN-E1||Müller^Zoë\rFT1|1|||20260101||CG|FEE|Fee € 12\r';
  await mkdir(join(engine.dir, 'inbox'), { recursive: true });
  await writeFile(join(engine.dir, 'inbox', 'fees.hl7'), Buffer.from(text, 'latin1').map((byte, i) => (text[i] === '€' ? 0xa4 : byte)));
  const original = await eventually(async () => {
    const m = await messageOf(engine, 'MRN', 'lab');
    return m?.status === 'sent' ? m : undefined;
  });
  t.like((await engine.api('GET', `/api/messages/${original.id}`)).body, { charset: '8859/15', text });

  const resend = await engine.api('POST', `/api/messages/${original.id}/resend`);
  t.is(resend.status, 201, JSON.stringify(resend.body));
  const copy = await eventually(async () => {
    const m = (await engine.api('GET', `/api/messages/${resend.body.id}`)).body;
    return m.status === 'sent' ? m : undefined;
  });
  t.like(copy, { parentId: original.id, charset: '8859/15', text });
  t.deepEqual(await readFile(join(engine.dir, 'out', `${resend.body.id}.hl7`)), await readFile(join(engine.dir, 'out', `${original.id}.hl7`)));
});

test('GET /api/channels/:name: the channel with its normalized config; unknown names 404', async (t) => {
  const engine = await setup(t);
  const { status, body } = await engine.api('GET', '/api/channels/adt');
  t.is(status, 200);
  t.like(body, { name: 'adt', state: 'running', counts: { received: 0 }, queues: { inbound: 0, archive: 0, 'to-lab': 0 } });
  t.like(body.config, { name: 'adt', source: { type: 'mllp', host: '127.0.0.1', port: engine.port, maxFrameBytes: 1024 * 1024 }, concurrency: 1 });
  t.deepEqual(
    body.config.destinations.map((d: any) => [d.name, d.type, d.dir ?? d.channel]),
    [
      ['archive', 'file', join(engine.dir, 'out/adt')],
      ['to-lab', 'channel', 'lab'],
    ],
  );
  for (const path of ['/api/channels/nope', '/api/channels/nope/stop', '/api/channels/nope/start']) {
    const result = await engine.api(path.endsWith('nope') ? 'GET' : 'POST', path);
    t.deepEqual(result, { status: 404, body: { error: { code: 'CHANNEL_NOT_FOUND', message: 'no channel named nope' } } }, path);
  }
});

test('a start that fails (port taken meanwhile) leaves the channel in error, audited; a later start works', async (t) => {
  const engine = await setup(t);
  await engine.api('POST', '/api/channels/adt/stop');
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(engine.port, '127.0.0.1', resolve));

  const failed = await engine.api('POST', '/api/channels/adt/start');
  t.is(failed.status, 500);
  t.is(failed.body.error.code, 'PORT_IN_USE');
  const channel = (await engine.api('GET', '/api/channels/adt')).body;
  t.is(channel.state, 'error');
  t.regex(channel.lastError, /PORT_IN_USE: MLLP listener cannot bind 127\.0\.0\.1:\d+: address already in use$/);
  t.regex((await engine.api('GET', '/api/audit')).body[0].detail, /^failed: PORT_IN_USE: /);

  await new Promise<void>((resolve) => blocker.close(() => resolve()));
  t.is((await engine.api('POST', '/api/channels/adt/start')).body.state, 'running');
  t.is(await engine.send('P1', 'MRN3'), 'AA');
});
