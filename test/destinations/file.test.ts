import test, { type ExecutionContext } from 'ava';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createChannel } from '../../engine/channel.ts';
import type { FileDestinationConfig } from '../../engine/destinations/file.ts';
import type { Delivery } from '../../engine/destinations/destination.ts';
import { fileDestination, fileNameFor } from '../../engine/destinations/file.ts';
import { FerryError } from '../../engine/errors.ts';
import { inProgressName } from '../../engine/file-names.ts';
import { redisConnectionOptions } from '../../engine/redis/connection.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';
import { captureLogger } from '../helpers/logger.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { eventually, tempDir } from '../helpers/temp.ts';

const ID = '01HZX5J3Q8M4T2V7N6B9C0D1EF';

const delivery = (overrides: Partial<Delivery> = {}): Delivery => ({
  id: ID,
  channel: 'adt',
  destination: 'archive',
  output: 0,
  content: Buffer.from('MSH|^~\\&|A|B\r'),
  controlId: 'MSG00001',
  receivedAt: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
  ...overrides,
});

const config = (dir: string, filename = '{id}.hl7', onExists: FileDestinationConfig['onExists'] = 'suffix'): FileDestinationConfig => ({
  name: 'archive',
  type: 'file',
  order: 'fifo',
  retry: { attempts: 3, backoff: 'exponential', delayMs: 10, maxDelayMs: 100 },
  dir,
  filename,
  onExists,
});

/** Another message (its own id and content) with the same MSH-10. */
const OTHER = '01HZX5J3Q8M4T2V7N6B9C0D1EG';

const names: Array<[string, string, Partial<Delivery>, string]> = [
  ['{id}', '{id}', {}, ID],
  ['every token', '{channel}-{destination}-{date}-{time}-{controlId}-{index}.hl7', {}, 'adt-archive-20260102-030405006-MSG00001-0.hl7'],
  ['an unknown token is dropped', '{id}{nope}.hl7', {}, `${ID}.hl7`],
  ['controlId: unsafe characters become _', '{controlId}.hl7', { controlId: 'A/B C:D\\E' }, 'A_B_C_D_E.hl7'],
  ['controlId: safe punctuation kept', '{controlId}.hl7', { controlId: 'x.y_z-1' }, 'x.y_z-1.hl7'],
  ['controlId: missing falls back to the id', '{controlId}.hl7', { controlId: null }, `${ID}.hl7`],
  ['controlId: empty falls back to the id', '{controlId}.hl7', { controlId: '' }, `${ID}.hl7`],
  ['controlId: "." falls back to the id', '{controlId}', { controlId: '.' }, ID],
  ['controlId: ".." falls back to the id', '{controlId}', { controlId: '..' }, ID],
  ['date and time are UTC and zero-padded', '{date}{time}', { receivedAt: Date.UTC(2026, 11, 31, 23, 59, 59, 999) }, '20261231235959999'],
  ['output 1 gets -1 before the extension', '{controlId}.hl7', { output: 1 }, 'MSG00001-1.hl7'],
  ['output 2 with a dotted name: before the last dot', '{controlId}.out.hl7', { output: 2 }, 'MSG00001.out-2.hl7'],
  ['output 1 without an extension: suffix at the end', '{id}', { output: 1 }, `${ID}-1`],
  ['output 1 with a leading-dot name: suffix at the end', '.{controlId}', { output: 1 }, '.MSG00001-1'],
  ['{index} in the pattern: no extra suffix', '{controlId}_{index}.hl7', { output: 3 }, 'MSG00001_3.hl7'],
  ['output 0 never gets a suffix', '{controlId}.hl7', { output: 0 }, 'MSG00001.hl7'],
  // Names Ferry's own file source would skip as unfinished are never made from MSH-10.
  ['controlId: a leading dot becomes _', '{controlId}.hl7', { controlId: '.hidden' }, '_hidden.hl7'],
  ['controlId: "../X" loses its dots and its slash', '{controlId}.hl7', { controlId: '../X' }, '___X.hl7'],
  ['controlId: ".._X" cleans to the same name as "../X"', '{controlId}.hl7', { controlId: '.._X' }, '___X.hl7'],
  ['controlId: dots inside are kept', '{controlId}.hl7', { controlId: 'a..b' }, 'a..b.hl7'],
  ['controlId: a final .tmp becomes _tmp', '{controlId}', { controlId: 'x.tmp' }, 'x_tmp'],
  ['controlId: a final .PART becomes _PART', '{controlId}', { controlId: 'x.PART' }, 'x_PART'],
  ['controlId: .tmp then a suffix', '{controlId}', { controlId: 'x.tmp', output: 1 }, 'x-1_tmp'],
  ['controlId: .tmp inside the name is kept', '{controlId}.hl7', { controlId: 'x.tmp' }, 'x.tmp.hl7'],
  ['a pattern that asks for a hidden name keeps it', '.{controlId}.hl7', { controlId: '.x' }, '..x.hl7'],
  ['a pattern that asks for .tmp keeps it', '{controlId}.tmp', {}, 'MSG00001.tmp'],
];

for (const [title, pattern, overrides, expected] of names) {
  test(`fileNameFor: ${title}`, (t) => {
    t.is(fileNameFor(pattern, delivery(overrides)), expected);
  });
}

test('send writes the exact bytes under the final name and leaves no temp file', async (t) => {
  const dir = join(await tempDir(t), 'out', 'adt');
  const destination = fileDestination(config(dir, '{controlId}.hl7'));
  // Every byte value, including CR, NUL and bytes that are not valid UTF-8.
  const content = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const outcome = await destination.send(delivery({ content }));
  t.is(outcome, `wrote ${join(dir, 'MSG00001.hl7')}`);
  t.deepEqual(await readFile(join(dir, 'MSG00001.hl7')), content);
  t.deepEqual(await readdir(dir), ['MSG00001.hl7']);
  await destination.close();
});

test('a replay of the same output writes no second file and says so', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir, '{controlId}.hl7'));
  t.is(await destination.send(delivery()), `wrote ${join(dir, 'MSG00001.hl7')}`);
  // The engine died after the write, before the message log said "sent": the same delivery again.
  t.is(await destination.send(delivery()), `${join(dir, 'MSG00001.hl7')} already holds this output (written before a restart or retry); not written again`);
  t.deepEqual(await readdir(dir), ['MSG00001.hl7']);
});

test('two messages with the same MSH-10: both files are written, each response names its file', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir, '{controlId}.hl7'));
  const first = await destination.send(delivery({ content: Buffer.from('first message') }));
  const second = await destination.send(delivery({ id: OTHER, content: Buffer.from('second message') }));
  t.is(first, `wrote ${join(dir, 'MSG00001.hl7')}`);
  t.is(second, `wrote ${join(dir, `MSG00001-${OTHER}.hl7`)} (MSG00001.hl7 holds another file)`);
  t.is(await readFile(join(dir, 'MSG00001.hl7'), 'latin1'), 'first message');
  t.is(await readFile(join(dir, `MSG00001-${OTHER}.hl7`), 'latin1'), 'second message');
  // A replay of the second finds its own file under the name with its id.
  t.is(await destination.send(delivery({ id: OTHER, content: Buffer.from('second message') })), `${join(dir, `MSG00001-${OTHER}.hl7`)} already holds this output (written before a restart or retry); not written again`);
  t.deepEqual((await readdir(dir)).sort(), [`MSG00001-${OTHER}.hl7`, 'MSG00001.hl7']);
});

test('"../X" and ".._X": distinct ids that clean to one name both land, in names the file source reads', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir, '{controlId}.hl7'));
  await destination.send(delivery({ controlId: '../X', content: Buffer.from('slash') }));
  await destination.send(delivery({ id: OTHER, controlId: '.._X', content: Buffer.from('underscore') }));
  const names = (await readdir(dir)).sort();
  t.deepEqual(names, [`___X-${OTHER}.hl7`, '___X.hl7']);
  t.false(names.some(inProgressName));
  t.is(await readFile(join(dir, '___X.hl7'), 'latin1'), 'slash');
  t.is(await readFile(join(dir, `___X-${OTHER}.hl7`), 'latin1'), 'underscore');
});

test('messages racing for one name each get their own file', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir, 'same.hl7'));
  const ids = Array.from({ length: 12 }, (_, i) => `01HZX5J3Q8M4T2V7N6B9C0D1${String(i).padStart(2, '0')}`);
  const outcomes = await Promise.all(ids.map((id) => destination.send(delivery({ id, content: Buffer.from(`content of ${id}`) }))));
  const names = await readdir(dir);
  t.is(names.length, ids.length);
  // One message won same.hl7; each other one is under same-<its id>.hl7, holding its own content.
  const winner = ids.find((id) => !names.includes(`same-${id}.hl7`))!;
  t.deepEqual(names.sort(), ['same.hl7', ...ids.filter((id) => id !== winner).map((id) => `same-${id}.hl7`)].sort());
  t.is(await readFile(join(dir, 'same.hl7'), 'latin1'), `content of ${winner}`);
  for (const id of ids.filter((id) => id !== winner)) t.is(await readFile(join(dir, `same-${id}.hl7`), 'latin1'), `content of ${id}`);
  t.deepEqual(new Set(outcomes).size, ids.length, 'each response names its own file');
});

test('onExists: error → FILE_EXISTS, permanent, for another message; the earlier file is kept; a replay is fine', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir, '{controlId}.hl7', 'error'));
  await destination.send(delivery({ content: Buffer.from('first message') }));
  const error = await t.throwsAsync(destination.send(delivery({ id: OTHER, content: Buffer.from('second message') })), { instanceOf: FerryError });
  t.is(error.code, 'FILE_EXISTS');
  t.true(error.permanent);
  t.is(error.message, `cannot write ${join(dir, 'MSG00001.hl7')}: another file or a folder has this name (onExists: error)`);
  t.is(await readFile(join(dir, 'MSG00001.hl7'), 'latin1'), 'first message');
  t.deepEqual(await readdir(dir), ['MSG00001.hl7'], 'no temp file left');
  t.regex(await destination.send(delivery({ content: Buffer.from('first message') })), /already holds this output/);
});

test('onExists: overwrite replaces the file; only then', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir, '{controlId}.hl7', 'overwrite'));
  await destination.send(delivery({ content: Buffer.from('first, longer content') }));
  t.is(await destination.send(delivery({ id: OTHER, content: Buffer.from('second') })), `wrote ${join(dir, 'MSG00001.hl7')}`);
  t.is(await readFile(join(dir, 'MSG00001.hl7'), 'latin1'), 'second');
  t.deepEqual(await readdir(dir), ['MSG00001.hl7']);
});

test('a 300-character MSH-10 → FILE_NAME_TOO_LONG, permanent, before the disk is touched', async (t) => {
  const dir = join(await tempDir(t), 'out');
  const controlId = 'C'.repeat(300);
  const error = await t.throwsAsync(fileDestination(config(dir, '{controlId}.hl7')).send(delivery({ controlId })), { instanceOf: FerryError });
  t.is(error.code, 'FILE_NAME_TOO_LONG');
  t.true(error.permanent);
  t.is(
    error.message,
    `cannot write ${join(dir, `${'C'.repeat(64)}…`)}: the file name is 304 bytes, file systems take at most 255 (does filename use {controlId}? MSH-10 is as long as the sender makes it)`,
  );
  await t.throwsAsync(readdir(dir), { code: 'ENOENT' }, 'not even the folder was made');
});

test('name length is counted in UTF-8 bytes, the suffixed name too', async (t) => {
  const dir = await tempDir(t);
  // 128 characters, 258 bytes: too long although it has fewer than 255 characters.
  const tooLong = await t.throwsAsync(fileDestination(config(dir, `${'é'.repeat(128)}.x`)).send(delivery()), { instanceOf: FerryError });
  t.is(tooLong.code, 'FILE_NAME_TOO_LONG');
  t.regex(tooLong.message, /the file name is 258 bytes/);
  // 254 bytes fit; the same name plus "-<id>" for a second message does not.
  const pattern = `${'é'.repeat(126)}.x`;
  const destination = fileDestination(config(dir, pattern));
  await destination.send(delivery());
  const error = await t.throwsAsync(destination.send(delivery({ id: OTHER, content: Buffer.from('other') })), { instanceOf: FerryError });
  t.is(error.code, 'FILE_NAME_TOO_LONG');
  t.true(error.permanent);
  t.regex(error.message, /the file name is 281 bytes/);
  t.deepEqual(await readdir(dir), [pattern], 'no temp file left');
});

test("a replay whose output changed (a script's timestamp) replaces its own earlier file, never another message's", async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir, '{controlId}.hl7'));
  await destination.send(delivery({ content: Buffer.from('first message') }));
  await destination.send(delivery({ id: OTHER, content: Buffer.from('second message, first run') }));
  t.is(await destination.send(delivery({ id: OTHER, content: Buffer.from('second message, replayed') })), `wrote ${join(dir, `MSG00001-${OTHER}.hl7`)} (MSG00001.hl7 holds another file)`);
  t.is(await readFile(join(dir, 'MSG00001.hl7'), 'latin1'), 'first message');
  t.is(await readFile(join(dir, `MSG00001-${OTHER}.hl7`), 'latin1'), 'second message, replayed');
  t.deepEqual((await readdir(dir)).sort(), [`MSG00001-${OTHER}.hl7`, 'MSG00001.hl7']);
});

test('a NUL in the name → FILE_NAME_INVALID, permanent, before the disk is touched', async (t) => {
  const dir = join(await tempDir(t), 'out');
  // No file system stores a NUL; YAML can spell one ("\\0") in a pattern.
  const error = await t.throwsAsync(fileDestination(config(dir, 'a\0b.hl7')).send(delivery()), { instanceOf: FerryError });
  t.is(error.code, 'FILE_NAME_INVALID');
  t.true(error.permanent);
  t.is(error.message, `cannot write ${join(dir, 'a\\0b.hl7')}: a file name cannot hold a NUL character`);
  await t.throwsAsync(readdir(dir), { code: 'ENOENT' });
});

test('a folder with the name: skipped with onExists: suffix; FILE_EXISTS otherwise, temp file removed', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, `${ID}.hl7`, 'inside'), { recursive: true });
  t.is(await fileDestination(config(dir)).send(delivery()), `wrote ${join(dir, `${ID}-${ID}.hl7`)} (${ID}.hl7 holds another file)`);
  for (const onExists of ['overwrite', 'error'] as const) {
    const error = await t.throwsAsync(fileDestination(config(dir, '{id}.hl7', onExists)).send(delivery()), { instanceOf: FerryError });
    t.is(error.code, 'FILE_EXISTS', onExists);
    t.true(error.permanent);
  }
  t.deepEqual((await readdir(dir)).sort(), [`${ID}-${ID}.hl7`, `${ID}.hl7`]);
});

// ---------------------------------------------------------------------------------------------
// Inside a channel (private Redis, message log): what the message log and the engine log say.

const msg = (controlId: string, mrn: string): string => `MSH|^~\\&|FERRY|HOSP|EHR|HOSP|20260101120000||ADT^A01^ADT_A01|${controlId}|P|2.5\rPID|1||${mrn}\r`;

const inChannel = async (t: ExecutionContext, out: string) => {
  const dir = await tempDir(t);
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const store = openMessageStore(join(dir, 'messages.db'));
  t.teardown(() => store.close());
  const { logger, lines } = captureLogger();
  const channel = createChannel(
    {
      name: 'adt',
      source: { type: 'channel' },
      script: undefined,
      scriptLimits: { memoryBytes: 32 * 1024 * 1024, timeoutMs: 1000, maxOutputs: 1000 },
      concurrency: 1,
      maxQueued: 1000,
      dedupe: undefined,
      // Retried forever, every 10 ms: a failure taken for transient would never settle.
      destinations: [{ ...config(out, '{controlId}.hl7'), retry: { attempts: 0, backoff: 'fixed', delayMs: 10, maxDelayMs: 10 } }],
    },
    { store, connection: redisConnectionOptions({ path: redis.path }), logger, services: { intakeOf: () => undefined } },
  );
  t.teardown(() => channel.close());
  await channel.start();
  const accept = async (text: string): Promise<string> => {
    const result = await channel.intake.accept(Buffer.from(text, 'latin1'), { source: 'test', requireHl7: true });
    if (result.kind !== 'accepted') throw new Error(`not accepted: ${result.kind}`);
    return result.id;
  };
  const stage = (id: string) => store.get(id)?.stages.find((s) => s.stage === 'archive#0');
  const settled = (id: string) => eventually(() => (['sent', 'error'].includes(stage(id)?.status ?? '') ? stage(id) : undefined), 30_000, `message ${id} to settle`);
  return { accept, settled, lines };
};

test('channel: two messages with one MSH-10 are both sent, to two files the message log names', async (t) => {
  const out = await tempDir(t);
  const { accept, settled } = await inChannel(t, out);
  const first = await accept(msg('DUP1', 'MRN1'));
  const second = await accept(msg('DUP1', 'MRN2'));
  const [a, b] = [await settled(first), await settled(second)];
  t.is(a.status, 'sent');
  t.is(b.status, 'sent');
  t.is(a.content, `wrote ${join(out, 'DUP1.hl7')}`);
  t.is(b.content, `wrote ${join(out, `DUP1-${second}.hl7`)} (DUP1.hl7 holds another file)`);
  t.is(await readFile(join(out, 'DUP1.hl7'), 'latin1'), msg('DUP1', 'MRN1'));
  t.is(await readFile(join(out, `DUP1-${second}.hl7`), 'latin1'), msg('DUP1', 'MRN2'));
});

test('channel: a 300-character MSH-10 goes to error once, FILE_NAME_TOO_LONG, not retried (attempts: 0); the next message is delivered', async (t) => {
  const out = await tempDir(t);
  const { accept, settled, lines } = await inChannel(t, out);
  const long = await accept(msg('L'.repeat(300), 'MRN1'));
  const next = await accept(msg('NEXT1', 'MRN2'));
  const failed = await settled(long);
  t.is(failed.status, 'error');
  t.is(failed.attempts, 1);
  t.regex(failed.error ?? '', /^FILE_NAME_TOO_LONG: cannot write .*L{64}…: the file name is 304 bytes, file systems take at most 255/);
  t.is((await settled(next)).status, 'sent');
  t.deepEqual(await readdir(out), ['NEXT1.hl7']);
  const logged = lines.filter((line) => line['id'] === long);
  t.deepEqual(
    logged.map((line) => line.msg.replace(/: cannot write .*/s, '')),
    ['delivery failed: FILE_NAME_TOO_LONG'],
    'one line, no "retrying"',
  );
});

test('sendMany: a run of outputs is written together and placed in order; a failure ends the run there', async (t) => {
  const dir = await tempDir(t);
  const dest = fileDestination(config(dir, '{controlId}.hl7'));
  const run = ['A1', 'A2', 'x'.repeat(300), 'A4'].map((controlId, i) => delivery({ id: `01M00000000000000000000A${i}`, controlId, content: Buffer.from(`m${i}`) }));
  const outcomes = await dest.sendMany!(run);
  t.is(outcomes.length, 3, 'the run stops at the failing output');
  t.like(outcomes[0], { ok: true, response: `wrote ${join(dir, 'A1.hl7')}` });
  t.like(outcomes[1], { ok: true, response: `wrote ${join(dir, 'A2.hl7')}` });
  t.like(outcomes[2], { ok: false, error: { code: 'FILE_NAME_TOO_LONG', permanent: true } });
  t.deepEqual((await readdir(dir)).sort(), ['A1.hl7', 'A2.hl7'], 'nothing after the failure, no temp files left');
  t.is(await readFile(join(dir, 'A2.hl7'), 'utf8'), 'm1');
  // The same run again (a replay): nothing is written twice.
  const again = await dest.sendMany!(run.slice(0, 2));
  t.true(again.every((o) => o.ok && /already holds this output/.test(o.response)));
});
