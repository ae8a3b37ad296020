import test from 'ava';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runFerry, startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { fileTeardown } from '../helpers/file-teardown.ts';
import { adtSegments } from '../helpers/hl7.ts';
import { channelsYaml, writeProject } from '../helpers/project.ts';
import { eventually, freePort, tempDir } from '../helpers/temp.ts';

// `ferry send <host:port> <file…>` as a process: against a running engine (one for the whole file),
// against nothing, and against a peer that never answers. Checks the printed ACK lines, the exit
// code, and what the engine made of the bytes (message log text, delivered files).

const SAMPLES = fileURLToPath(new URL('../../scripts/samples/', import.meta.url));

interface MessageSummary {
  id: string;
  status: string;
  controlId: string | null;
  error: string | null;
}

interface MessageDetail extends MessageSummary {
  text: string;
  raw: string;
  outputs: string[];
}

let dir = '';
let mllp = '';
let engine: EngineProcess;
const collector = fileTeardown();

test.before(async () => {
  dir = await tempDir(collector, 'ferry-send-');
  const port = await freePort();
  const configFile = await writeProject(
    dir,
    channelsYaml({
      channels: `  - name: inbox
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: files, type: file, dir: ./out, filename: "{controlId}.hl7" }
`,
    }),
  );
  await mkdir(join(dir, 'in'));
  engine = await startEngineProcess(collector, configFile, dir);
  collector.teardown(() => engine.stop().catch(() => undefined));
  mllp = `127.0.0.1:${port}`;
});

/** The one message in the log with this control id, once it has reached `status`. */
const messageWith = async (controlId: string, status: string): Promise<MessageDetail> => {
  const summary = await eventually(
    async () => {
      const { body } = await engine.api<{ items: MessageSummary[] }>(`/api/messages?channel=inbox&q=${controlId}`);
      const mine = body.items.filter((m) => m.controlId === controlId);
      return mine.length === 1 && mine[0]!.status === status ? mine[0] : undefined;
    },
    15_000,
    `message ${controlId} ${status}`,
  );
  return (await engine.api<MessageDetail>(`/api/messages/${summary.id}`)).body;
};

const segments = (controlId: string, mrn: string): string[] => adtSegments({ controlId, mrn });

test('one message per file: one AA line with its control id, exit 0', async (t) => {
  const file = join(dir, 'in', 'one.hl7');
  const message = segments('SND0001', 'MRN1').join('\r') + '\r';
  await writeFile(file, message);
  const run = await runFerry(['send', mllp, 'in/one.hl7'], { cwd: dir });
  t.is(run.stdout, 'in/one.hl7: AA for SND0001\n');
  t.is(run.stderr, '');
  t.is(run.code, 0);
  const stored = await messageWith('SND0001', 'sent');
  t.is(stored.text, message);
  t.is(await readFile(join(dir, 'out', 'SND0001.hl7'), 'latin1'), message);
});

// Two messages per file, as people write them; each row uses its own control ids.
const twoMessageFiles = [
  {
    title: 'LF endings, a blank line between, no final newline (typed in an editor)',
    ids: ['SND0002', 'SND0003'],
    text: (a: string[], b: string[]) => `${a.join('\n')}\n\n${b.join('\n')}`,
  },
  {
    title: 'CRLF endings',
    ids: ['SND0012', 'SND0013'],
    text: (a: string[], b: string[]) => `${[...a, ...b].join('\r\n')}\r\n`,
  },
  {
    title: 'an HL7 batch (FHS/BHS … BTS/FTS envelope)',
    ids: ['SND0022', 'SND0023'],
    text: (a: string[], b: string[]) => [`FHS|^~\\&|REGSYS|HOSP`, `BHS|^~\\&|REGSYS|HOSP`, ...a, ...b, 'BTS|2', 'FTS|1'].join('\n') + '\n',
  },
];

for (const { title, ids, text } of twoMessageFiles) {
  test(`two messages in one file, ${title}: two AA lines, stored with CR terminators`, async (t) => {
    const file = join(dir, 'in', `${ids[0]}.hl7`);
    const [a, b] = ids.map((id, i) => segments(id, `MRN${i}`));
    await writeFile(file, text(a!, b!));
    const run = await runFerry(['send', mllp, file], { cwd: dir });
    t.is(run.stdout, `${file}#1: AA for ${ids[0]}\n${file}#2: AA for ${ids[1]}\n`);
    t.is(run.code, 0);

    for (const [i, controlId] of ids.entries()) {
      const expected = segments(controlId, `MRN${i}`).join('\r') + '\r';
      const stored = await messageWith(controlId, 'sent');
      t.is(stored.text, expected);
      t.is(Buffer.from(stored.raw, 'base64').toString('latin1'), expected);
      t.is(await readFile(join(dir, 'out', `${controlId}.hl7`), 'latin1'), expected);
    }
  });
}

test('a non-HL7 file among good ones: AR for it, AA for the rest, exit 1', async (t) => {
  await writeFile(join(dir, 'in', 'notes.txt'), 'please call the ward\n');
  await writeFile(join(dir, 'in', 'good.hl7'), segments('SND0004', 'MRN4').join('\r'));
  const run = await runFerry(['send', mllp, 'in/notes.txt', 'in/good.hl7'], { cwd: dir });
  const lines = run.stdout.trimEnd().split('\n');
  t.is(lines.length, 2, run.stdout);
  t.regex(lines[0]!, /^in\/notes\.txt: AR for \(no control id\) \(the message does not start with an MSH segment/);
  t.is(lines[1], 'in/good.hl7: AA for SND0004');
  t.is(run.code, 1);

  // The refused bytes are in the message log as an error, for the operator to see.
  const refused = await eventually(async () => {
    const { body } = await engine.api<{ items: MessageSummary[] }>('/api/messages?channel=inbox&status=error&q=ward');
    return body.items.length === 1 ? body.items[0] : undefined;
  });
  t.regex(refused.error ?? '', /HL7_NOT_HL7/);
  // What was sent: `ferry send` turned the line ending into a segment terminator.
  t.is((await engine.api<MessageDetail>(`/api/messages/${refused.id}`)).body.text, 'please call the ward\r');
  await messageWith('SND0004', 'sent');
});

test('the repository samples: AA for MSG00001 and MSG00002, delivered byte for byte', async (t) => {
  const adt = join(SAMPLES, 'adt-a01.hl7');
  const oru = join(SAMPLES, 'oru-r01.hl7');
  const run = await runFerry(['send', mllp, adt, oru], { cwd: dir });
  t.is(run.stdout, `${adt}: AA for MSG00001\n${oru}: AA for MSG00002\n`);
  t.is(run.code, 0);
  for (const [file, controlId] of [
    [adt, 'MSG00001'],
    [oru, 'MSG00002'],
  ] as const) {
    const sample = await readFile(file, 'latin1');
    const stored = await messageWith(controlId, 'sent');
    t.is(stored.text, sample);
    t.is(await readFile(join(dir, 'out', `${controlId}.hl7`), 'latin1'), sample);
  }
});

test('nothing listening: a "no ACK" line per message, exit 1', async (t) => {
  const work = await tempDir(t);
  await writeFile(join(work, 'two.hl7'), `${segments('NOBODY1', 'M').join('\r')}\r${segments('NOBODY2', 'M').join('\r')}\r`);
  const port = await freePort();
  const run = await runFerry(['send', `127.0.0.1:${port}`, 'two.hl7'], { cwd: work });
  const refused = `no ACK: MLLP_CONNECT_FAILED: cannot connect to 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`;
  t.is(run.stdout, `two.hl7#1: ${refused}\ntwo.hl7#2: ${refused}\n`);
  t.is(run.code, 1);
});

test('a peer that never answers: MLLP_ACK_TIMEOUT after --timeout, exit 1', async (t) => {
  const work = await tempDir(t);
  const first = segments('SILENT1', 'M').join('\r') + '\r';
  await writeFile(join(work, 'two.hl7'), first + segments('SILENT2', 'M').join('\r') + '\r');
  // Per connection: when the frame arrived and when the client gave up on it and hung up.
  const connections: Array<{ socket: Socket; data: Buffer[]; dataAt?: number; closedAt?: number }> = [];
  const silent = createServer((socket) => {
    const connection: (typeof connections)[number] = { socket, data: [] };
    connections.push(connection);
    socket.on('data', (chunk) => {
      connection.dataAt ??= Date.now();
      connection.data.push(chunk);
    });
    socket.on('close', () => (connection.closedAt = Date.now()));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const { socket } of connections) socket.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  const { port } = silent.address() as { port: number };

  const run = await runFerry(['send', `127.0.0.1:${port}`, 'two.hl7', '--timeout', '300ms'], { cwd: work });
  const timedOut = `no ACK: MLLP_ACK_TIMEOUT: no reply from 127.0.0.1:${port} within 300 ms`;
  t.is(run.stdout, `two.hl7#1: ${timedOut}\ntwo.hl7#2: ${timedOut}\n`);
  t.is(run.code, 1);
  // Each message was sent framed on a connection of its own: the client resets a connection whose
  // reply is overdue, so a late reply cannot be taken for the next message's.
  const second = segments('SILENT2', 'M').join('\r') + '\r';
  await eventually(() => (connections.every((c) => c.closedAt !== undefined) ? true : undefined), 5_000, 'both connections closed');
  t.deepEqual(
    connections.map((c) => Buffer.concat(c.data).toString('latin1')),
    [`\x0b${first}\x1c\r`, `\x0b${second}\x1c\r`],
  );
  for (const { dataAt, closedAt } of connections) {
    const waited = closedAt! - dataAt!;
    // --timeout 300ms, not the 10 s default. (No lower bound: on a busy machine this process may
    // see the frame late, which shortens the wait as measured here.)
    t.true(waited < 5_000, `waited ${waited} ms`);
  }
});

test('a file that cannot be read: one CLI_FILE_UNREADABLE line naming it, nothing sent, exit 1', async (t) => {
  const work = await tempDir(t);
  await writeFile(join(work, 'good.hl7'), segments('UNREAD1', 'M').join('\r') + '\r');
  await writeFile(join(work, 'client.crt'), 'not used');
  await mkdir(join(work, 'folder'));
  // A peer that counts connections: a refusal must come before anything is sent, even the good file.
  let connections = 0;
  const peer = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => peer.close(() => resolve())));
  const target = `127.0.0.1:${(peer.address() as { port: number }).port}`;

  const cases: Array<[string[], string]> = [
    [['good.hl7', 'nosuch.hl7'], 'file nosuch.hl7 does not exist'],
    [['folder'], 'cannot read file folder: it is a directory'],
    [['good.hl7', '--ca', 'nosuch.pem'], '--ca file nosuch.pem does not exist'],
    [['good.hl7', '--cert', 'client.crt', '--key', 'nosuch.key'], '--key file nosuch.key does not exist'],
  ];
  for (const [args, message] of cases) {
    const run = await runFerry(['send', target, ...args], { cwd: work });
    t.is(run.stderr, `ferry: CLI_FILE_UNREADABLE: ${message}\n`, args.join(' '));
    t.is(run.stdout, '', args.join(' '));
    t.is(run.code, 1, args.join(' '));
  }
  t.is(connections, 0);
});
