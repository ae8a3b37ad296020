import test from 'ava';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileDestinationConfig } from '../../engine/config.ts';
import type { Delivery } from '../../engine/destinations/destination.ts';
import { fileDestination, fileNameFor } from '../../engine/destinations/file.ts';
import { FerryError } from '../../engine/errors.ts';
import { tempDir } from '../helpers/temp.ts';

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

const config = (dir: string, filename = '{id}.hl7'): FileDestinationConfig => ({
  name: 'archive',
  type: 'file',
  order: 'fifo',
  retry: { attempts: 3, backoff: 'exponential', delayMs: 10, maxDelayMs: 100 },
  dir,
  filename,
});

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

test('a replay overwrites the same file', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir));
  await destination.send(delivery({ content: Buffer.from('first, longer content') }));
  await destination.send(delivery({ content: Buffer.from('second') }));
  t.is(await readFile(join(dir, `${ID}.hl7`), 'latin1'), 'second');
  t.deepEqual(await readdir(dir), [`${ID}.hl7`]);
});

test('outputs of one message get their own files', async (t) => {
  const dir = await tempDir(t);
  const destination = fileDestination(config(dir));
  await Promise.all([0, 1, 2].map((output) => destination.send(delivery({ output, content: Buffer.from(`out ${output}`) }))));
  t.deepEqual((await readdir(dir)).sort(), [`${ID}-1.hl7`, `${ID}-2.hl7`, `${ID}.hl7`]);
  t.is(await readFile(join(dir, `${ID}-2.hl7`), 'latin1'), 'out 2');
});

test('a folder that cannot be created → FILE_WRITE_FAILED, transient', async (t) => {
  const root = await tempDir(t);
  // A regular file where a parent folder should be: mkdir fails even for root.
  await writeFile(join(root, 'blocker'), 'x');
  const dir = join(root, 'blocker', 'out');
  const error = await t.throwsAsync(fileDestination(config(dir)).send(delivery()), { instanceOf: FerryError });
  t.is(error.code, 'FILE_WRITE_FAILED');
  t.false(error.permanent);
  t.true(error.message.includes(join(dir, `${ID}.hl7`)));
  t.truthy(error.cause);
});

test('a failed rename removes its temp file', async (t) => {
  const dir = await tempDir(t);
  // The final name is taken by a non-empty folder, so the rename over it fails.
  await mkdir(join(dir, `${ID}.hl7`, 'inside'), { recursive: true });
  const error = await t.throwsAsync(fileDestination(config(dir)).send(delivery()), { instanceOf: FerryError });
  t.is(error.code, 'FILE_WRITE_FAILED');
  t.deepEqual(await readdir(dir), [`${ID}.hl7`]);
});
