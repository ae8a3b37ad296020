import test, { type ExecutionContext } from 'ava';
import { appendFile, chmod, mkdir, readFile, readdir, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { FileSourceConfig } from '../../engine/sources/file.ts';
import { FerryError } from '../../engine/errors.ts';
import { decodeAs } from '../../engine/hl7/charset.ts';
import type { Intake, IntakeOptions, IntakeResult } from '../../engine/intake.ts';
import { fileNamePattern } from '../../engine/sources/file-pattern.ts';
import { fileSource, splitFile } from '../../engine/sources/file.ts';
import { captureLogger } from '../helpers/logger.ts';
import { eventually, tempDir } from '../helpers/temp.ts';

// The file source on real folders with a recording intake: which files are read and when, how they
// are split, where they go afterwards, and the ids that make a re-read harmless.

const msh = (id: string): string => `MSH|^~\\&|LAB|REF|FERRY|HOSP|20260101120000||ORU^R01^ORU_R01|${id}|P|2.5`;
/** A message with LF line ends, as files edited by hand have them. */
const lf = (id: string): string => `${msh(id)}\nPID|1||MRN-${id}\nOBX|1|NM|GLU||5.4|mmol/L\n`;
const cr = (id: string): string => `${msh(id)}\rPID|1||MRN-${id}\rOBX|1|NM|GLU||5.4|mmol/L\r`;

interface Call {
  id: string;
  raw: Buffer;
  options: IntakeOptions;
}

type Override = (call: Call, attempt: number) => IntakeResult | undefined;

/** An intake that commits by id (a second commit of an id is a duplicate) and records every call. */
const recordingIntake = (committed = new Map<string, Buffer>()) => {
  const calls: Call[] = [];
  let override: Override | undefined;
  const intake: Intake = {
    async accept(raw, options) {
      const call = { id: options.id!, raw, options };
      calls.push(call);
      const custom = override?.(call, calls.filter((c) => c.id === call.id).length);
      if (custom) return custom;
      const text = decodeAs(raw, options.charset ?? (raw[0] === 0xff ? 'UTF-16LE' : '8859/1')).replace(/^\uFEFF/, '');
      if (!text.startsWith('MSH')) {
        return { kind: 'rejected', id: call.id, header: undefined, charset: '8859/1', error: new FerryError('HL7_NOT_HL7', 'the message does not start with an MSH segment') };
      }
      const duplicate = committed.has(call.id);
      committed.set(call.id, raw);
      return { kind: 'accepted', id: call.id, header: undefined, charset: '8859/1', duplicate };
    },
    async drain() {},
  };
  return {
    intake,
    calls,
    committed,
    /** Ids accepted for the first time, in order. */
    fresh: () => [...committed.keys()],
    override: (fn: Override | undefined) => (override = fn),
  };
};

const sourceConfig = (dir: string, overrides: Partial<FileSourceConfig> = {}): FileSourceConfig => ({
  type: 'file',
  dir,
  pattern: '*.hl7',
  pollIntervalMs: 50,
  after: 'move',
  processedDir: join(dir, 'processed'),
  errorDir: join(dir, 'error'),
  encoding: 'auto',
  maxFileBytes: 64 * 1024 * 1024,
  ...overrides,
});

const startSource = async (t: ExecutionContext, config: FileSourceConfig, intake: Intake) => {
  const captured = captureLogger();
  const source = fileSource(config, { intake, logger: captured.logger });
  t.teardown(() => source.stop());
  await source.start();
  return { source, lines: captured.lines };
};

const exists = (file: string): Promise<boolean> => stat(file).then(() => true, () => false);
const until = (file: string, what = file) => eventually(async () => ((await exists(file)) ? true : undefined), 10_000, what);
const text = (call: Call): string => call.raw.toString('latin1');

test('a file of three messages: three commits in file order, CR line ends, derived ids; then moved to processed', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'results.hl7'), lf('A1') + lf('A2') + lf('A3'));
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'processed', 'results.hl7'));
  t.false(await exists(join(dir, 'results.hl7')));
  t.deepEqual(rec.calls.map(text), [cr('A1'), cr('A2'), cr('A3')]);
  t.deepEqual(rec.calls.map((c) => c.options.source), [1, 2, 3].map((n) => `file ${join(dir, 'results.hl7')}#${n}`));
  t.true(rec.calls.every((c) => c.options.requireHl7));
  // ULID-shaped (valid as X-Ferry-Message-Id downstream) with the index; one file, one prefix.
  const [first, second, third] = rec.calls.map((c) => c.id);
  t.regex(first!, /^[0-9A-HJKMNP-TV-Z]{26}-0$/);
  t.is(second, first!.replace(/-0$/, '-1'));
  t.is(third, first!.replace(/-0$/, '-2'));
  // The file is moved as it was, byte for byte.
  t.is(await readFile(join(dir, 'processed', 'results.hl7'), 'latin1'), lf('A1') + lf('A2') + lf('A3'));
});

test('an HL7 batch (FHS/BHS … BTS/FTS) of three messages: three messages, envelope dropped, file moved', async (t) => {
  const dir = await tempDir(t);
  const batch = [
    'FHS|^~\\&|LAB|REF|||20260101120000||batch.hl7||F1',
    'BHS|^~\\&|LAB|REF|||20260101120000||||B1',
    cr('B1').trimEnd(),
    cr('B2').trimEnd(),
    cr('B3').trimEnd(),
    'BTS|3',
    'FTS|1',
  ].join('\r\n');
  await writeFile(join(dir, 'batch.hl7'), `${batch}\r\n`);
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'processed', 'batch.hl7'));
  t.deepEqual(rec.calls.map(text), [cr('B1'), cr('B2'), cr('B3')]);
});

test('a file written slowly in pieces is not read until it stops changing; then read whole', async (t) => {
  const dir = await tempDir(t);
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir, { pollIntervalMs: 400 }), rec.intake);
  const content = lf('P1') + lf('P2') + lf('P3');
  const file = join(dir, 'slow.hl7');
  // 16 pieces 30 ms apart: every listing (400 ms apart) sees another size and mtime than the last.
  const pieces = content.match(/[\s\S]{1,8}/g)!;
  const step = Math.ceil(pieces.length / 16);
  for (let i = 0; i < pieces.length; i += step) {
    await appendFile(file, pieces.slice(i, i + step).join(''));
    t.is(rec.calls.length, 0, 'nothing read while the file grows');
    await delay(30);
  }
  await until(join(dir, 'processed', 'slow.hl7'));
  t.deepEqual(rec.calls.map(text), [cr('P1'), cr('P2'), cr('P3')]);
});

test('names a writer uses in progress (.name, .tmp, .part) are never read; renamed to the pattern, they are', async (t) => {
  const dir = await tempDir(t);
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  for (const [name, id] of [['.incoming.hl7', 'R1'], ['b.hl7.tmp', 'R2'], ['c.hl7.part', 'R3'], ['notes.txt', 'R4']] as const) {
    await writeFile(join(dir, name), lf(id));
  }
  await delay(400); // eight polls
  t.deepEqual(rec.calls, []);
  await rename(join(dir, 'b.hl7.tmp'), join(dir, 'b.hl7'));
  await until(join(dir, 'processed', 'b.hl7'));
  t.deepEqual(rec.calls.map(text), [cr('R2')]);
  t.deepEqual((await readdir(dir)).sort(), ['.incoming.hl7', 'c.hl7.part', 'notes.txt', 'processed']);
});

test('garbage and empty files go to errorDir with a <name>.error.txt; nothing reaches the intake', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'garbage.hl7'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
  await writeFile(join(dir, 'empty.hl7'), '');
  const rec = recordingIntake();
  const { lines } = await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'error', 'garbage.hl7.error.txt'));
  await until(join(dir, 'error', 'empty.hl7.error.txt'));
  t.deepEqual(rec.calls, []);
  t.regex(await readFile(join(dir, 'error', 'garbage.hl7.error.txt'), 'utf8'), /^\d{4}-\d\d-\d\dT.*garbage\.hl7\nFILE_READ_FAILED: .*garbage\.hl7: no HL7 message in it \(no segment starts with MSH\)\n$/);
  t.regex(await readFile(join(dir, 'error', 'empty.hl7.error.txt'), 'utf8'), /FILE_READ_FAILED: .*empty\.hl7: the file is empty/);
  t.deepEqual(await readFile(join(dir, 'error', 'garbage.hl7')), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
  t.true(lines.some((l) => l['code'] === 'FILE_READ_FAILED' && /moved garbage\.hl7 to .*error/.test(String(l.msg))));
});

test('a file not in its configured encoding goes to errorDir with the decoding error', async (t) => {
  const dir = await tempDir(t);
  // Three bytes: not UTF-16 (an odd length).
  await writeFile(join(dir, 'odd.hl7'), Buffer.from([0x4d, 0x00, 0x53]));
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir, { encoding: 'UNICODE UTF-16' }), rec.intake);
  await until(join(dir, 'error', 'odd.hl7.error.txt'));
  t.regex(await readFile(join(dir, 'error', 'odd.hl7.error.txt'), 'utf8'), /FILE_READ_FAILED: .*odd\.hl7 is not in UNICODE UTF-16: HL7_ENCODING: the message is not valid UTF-16BE/);
  t.deepEqual(rec.calls, []);
});

test('a file over maxFileSize goes to errorDir unread with FILE_TOO_LARGE; one at the limit is read', async (t) => {
  const dir = await tempDir(t);
  const fits = lf('S1');
  await writeFile(join(dir, 'fits.hl7'), fits);
  await writeFile(join(dir, 'big.hl7'), fits + lf('S2'));
  const rec = recordingIntake();
  const { lines } = await startSource(t, sourceConfig(dir, { maxFileBytes: Buffer.byteLength(fits) }), rec.intake);
  await until(join(dir, 'error', 'big.hl7.error.txt'));
  await until(join(dir, 'processed', 'fits.hl7'));
  t.deepEqual(rec.calls.map(text), [cr('S1')]);
  t.regex(
    await readFile(join(dir, 'error', 'big.hl7.error.txt'), 'utf8'),
    new RegExp(`FILE_TOO_LARGE: .*big\\.hl7 holds ${Buffer.byteLength(fits + lf('S2'))} bytes, more than maxFileSize \\(${Buffer.byteLength(fits)} bytes\\); split it, or raise maxFileSize`),
  );
  t.is(await readFile(join(dir, 'error', 'big.hl7'), 'utf8'), fits + lf('S2'));
  t.true(lines.some((l) => l['code'] === 'FILE_TOO_LARGE'));
});

(process.getuid?.() === 0 ? test.skip : test)('a file the engine may not read goes to errorDir with the reason', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'secret.hl7'), lf('S1'));
  await chmod(join(dir, 'secret.hl7'), 0o000);
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'error', 'secret.hl7.error.txt'));
  t.regex(await readFile(join(dir, 'error', 'secret.hl7.error.txt'), 'utf8'), /FILE_READ_FAILED: cannot read .*secret\.hl7: EACCES/);
});

test('messages the intake refuses: the rest are committed and the file is processed; none valid → errorDir', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'mixed.hl7'), `${lf('M1')}junk line\n${lf('M2')}`);
  await writeFile(join(dir, 'acks.hl7'), 'MSH|^~\\&|A|B|||20260101||ACK|K1|P|2.5\nMSA|AA|X\n');
  const rec = recordingIntake();
  rec.override((call) => (text(call).includes('|ACK|') ? { kind: 'ignored', header: { controlId: 'K1' } as never } : undefined));
  const { lines } = await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'processed', 'mixed.hl7'));
  await until(join(dir, 'error', 'acks.hl7.error.txt'));
  // Lines before the first MSH would be a message of their own; here the junk line ends M1.
  t.deepEqual(rec.fresh().length, 2);
  t.regex(await readFile(join(dir, 'error', 'acks.hl7.error.txt'), 'utf8'), /no valid HL7 message: #1 is an ACK \(MSH-10 K1\), not processed/);
  t.false(lines.some((l) => /refused/.test(String(l.msg))));

  await writeFile(join(dir, 'lead.hl7'), `garbage first\n${lf('L1')}`);
  await until(join(dir, 'processed', 'lead.hl7'));
  t.true(lines.some((l) => /1 of 2 messages in lead\.hl7 refused/.test(String(l.msg))));
});

test('name collisions in processedDir and errorDir get -1, -2 before the extension', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'processed'));
  await mkdir(join(dir, 'error'));
  await writeFile(join(dir, 'processed', 'x.hl7'), 'older');
  await writeFile(join(dir, 'processed', 'x-1.hl7'), 'older still');
  await writeFile(join(dir, 'error', 'bad.hl7.error.txt'), 'an old reason whose file was cleaned up');
  await writeFile(join(dir, 'x.hl7'), lf('X1'));
  await writeFile(join(dir, 'bad.hl7'), 'not hl7');
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'processed', 'x-2.hl7'));
  await until(join(dir, 'error', 'bad-1.hl7.error.txt'));
  t.is(await readFile(join(dir, 'processed', 'x.hl7'), 'utf8'), 'older');
  t.is(await readFile(join(dir, 'processed', 'x-2.hl7'), 'latin1'), lf('X1'));
  t.is(await readFile(join(dir, 'error', 'bad-1.hl7'), 'utf8'), 'not hl7');
});

test('after: delete removes the file once its messages are committed; processedDir is not made', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'gone.hl7'), lf('G1') + lf('G2'));
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir, { after: 'delete' }), rec.intake);
  await eventually(async () => ((await exists(join(dir, 'gone.hl7'))) ? undefined : true));
  t.is(rec.fresh().length, 2);
  t.deepEqual(await readdir(dir), []);
});

test('a commit the intake cannot make (QUEUE_FULL): the file stays, is read again, and each message is committed once', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'full.hl7'), lf('Q1') + lf('Q2') + lf('Q3'));
  const rec = recordingIntake();
  rec.override((call, attempt) =>
    text(call).includes('|Q2|') && attempt <= 2
      ? { kind: 'failed', header: undefined, charset: '8859/1', error: new FerryError('QUEUE_FULL', 'channel adt holds 10 unfinished messages') }
      : undefined,
  );
  const { lines } = await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'processed', 'full.hl7'));
  const [q1, q2, q3] = [...new Set(rec.calls.map((c) => c.id))];
  t.deepEqual(rec.calls.map((c) => c.id), [q1, q2, q1, q2, q1, q2, q3], 'Q1 offered three times under one id');
  t.deepEqual(rec.fresh(), [q1, q2, q3]);
  t.is(lines.filter((l) => /not committed \(QUEUE_FULL/.test(String(l.msg))).length, 1, 'logged once, not every poll');
});

test('stopped between two messages and started again (a new engine): every message committed exactly once, under the same ids', async (t) => {
  const dir = await tempDir(t);
  const ids = ['K1', 'K2', 'K3', 'K4', 'K5'];
  await writeFile(join(dir, 'five.hl7'), ids.map(lf).join(''));
  const committed = new Map<string, Buffer>();
  const first = recordingIntake(committed);
  const { source } = await startSource(t, sourceConfig(dir), first.intake);
  first.override((call) => {
    if (text(call).includes('|K3|')) void source.stop(); // stops before K4: the rest waits for the next start
    return undefined;
  });
  await eventually(() => (first.calls.length === 3 ? true : undefined));
  await source.stop();
  t.true(await exists(join(dir, 'five.hl7')), 'not finished: still in the folder');

  const second = recordingIntake(committed);
  await startSource(t, sourceConfig(dir), second.intake);
  await until(join(dir, 'processed', 'five.hl7'));
  t.is(second.calls.length, 5, 'the whole file read again');
  t.deepEqual(second.calls.slice(0, 3).map((c) => c.id), first.calls.map((c) => c.id), 're-read under the same ids');
  t.is(committed.size, 5);
  t.deepEqual([...committed.values()].map((raw) => raw.toString('latin1')), ids.map(cr));
});

test('files are read oldest first', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.hl7'), lf('NEW'));
  await writeFile(join(dir, 'b.hl7'), lf('OLD'));
  const past = new Date(Date.now() - 60_000);
  await utimes(join(dir, 'b.hl7'), past, past);
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'processed', 'a.hl7'));
  t.deepEqual(rec.calls.map(text), [cr('OLD'), cr('NEW')]);
});

test('stop stops polling: a file dropped afterwards stays where it is', async (t) => {
  const dir = await tempDir(t);
  const rec = recordingIntake();
  const { source } = await startSource(t, sourceConfig(dir), rec.intake);
  await source.stop();
  await source.stop(); // twice is fine
  await writeFile(join(dir, 'late.hl7'), lf('Z1'));
  await delay(300);
  t.deepEqual(rec.calls, []);
  t.deepEqual(await readdir(dir), ['late.hl7']);
});

test('a processed file moved back into the folder is read again, as a new file (new ids)', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'again.hl7'), lf('V1'));
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  await until(join(dir, 'processed', 'again.hl7'));
  await rename(join(dir, 'processed', 'again.hl7'), join(dir, 'again.hl7'));
  await eventually(() => (rec.calls.length === 2 ? true : undefined));
  t.not(rec.calls[0]!.id, rec.calls[1]!.id);
  t.deepEqual(rec.fresh().length, 2);
});

test('encoding: a configured character set is passed to the intake; UTF-16 files are split as text', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'latin.hl7'), Buffer.from(lf('É1'), 'latin1'));
  const utf16 = Buffer.from(`\uFEFF${lf('U1')}${lf('U2')}`, 'utf16le');
  await writeFile(join(dir, 'wide.hl7'), utf16);
  const latin = recordingIntake();
  const wide = recordingIntake();
  await startSource(t, sourceConfig(dir, { pattern: 'latin.hl7', encoding: '8859/1' }), latin.intake);
  await startSource(t, sourceConfig(dir, { pattern: 'wide.hl7', processedDir: join(dir, 'done16') }), wide.intake);
  await until(join(dir, 'processed', 'latin.hl7'));
  await until(join(dir, 'done16', 'wide.hl7'));
  t.is(latin.calls[0]!.options.charset, '8859/1');
  t.is(text(latin.calls[0]!), cr('É1'));
  t.is(wide.calls.length, 2);
  t.is(wide.calls[0]!.options.charset, undefined, 'auto: the BOM says what it is');
  for (const [i, id] of ['U1', 'U2'].entries()) {
    const raw = wide.calls[i]!.raw;
    t.deepEqual([raw[0], raw[1]], [0xff, 0xfe], 'each message keeps a byte order mark');
    t.is(decodeAs(raw, 'UTF-16LE'), `\uFEFF${cr(id)}`);
  }
});

test('the watched folder is created at start when missing', async (t) => {
  const dir = join(await tempDir(t), 'inbox', 'lab');
  const rec = recordingIntake();
  await startSource(t, sourceConfig(dir), rec.intake);
  t.true((await stat(dir)).isDirectory());
});

test('splitFile: CR, LF and CRLF, several messages, batch envelopes', (t) => {
  t.deepEqual(splitFile(Buffer.from(`${msh('1')}\r\nPID|1\r\n\r\n${msh('2')}\nPID|2`), 'auto').map(String), [`${msh('1')}\rPID|1\r`, `${msh('2')}\rPID|2\r`]);
  t.deepEqual(splitFile(Buffer.from(`FHS|^~\\&\rBHS|^~\\&\r${msh('1')}\rBTS|1\rFTS|1\r`), 'UNICODE UTF-8').map(String), [`${msh('1')}\r`]);
});

const patterns: Array<[string, string[], string[]]> = [
  ['*.hl7', ['a.hl7', 'ADT_1.hl7', '.hl7'], ['a.HL7', 'a.hl7.txt', 'a_hl7']],
  ['ADT_????.hl7', ['ADT_0001.hl7'], ['ADT_001.hl7', 'ADT_00001.hl7']],
  ['*.{hl7,txt}', ['a.hl7', 'b.txt'], ['c.dat', 'a.{hl7,txt}']],
  ['lab[0-9].hl7', ['lab1.hl7'], ['labx.hl7', 'lab10.hl7']],
  ['lab[!0-9].hl7', ['labx.hl7'], ['lab1.hl7']],
  ['a+b(1).hl7', ['a+b(1).hl7'], ['aab1.hl7']],
  ['[.hl7', ['[.hl7'], ['x.hl7']],
  ['*', ['anything', 'x.hl7'], []],
];

for (const [glob, yes, no] of patterns) {
  test(`fileNamePattern ${glob}`, (t) => {
    const re = fileNamePattern(glob);
    for (const name of yes) t.true(re.test(name), `${glob} should match ${name}`);
    for (const name of no) t.false(re.test(name), `${glob} should not match ${name}`);
  });
}

test('fileNamePattern: a range out of order is CONFIG_INVALID', (t) => {
  const error = t.throws<FerryError>(() => fileNamePattern('lab[z-a].hl7'));
  t.is(error!.code, 'CONFIG_INVALID');
});
