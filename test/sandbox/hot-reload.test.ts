import test from 'ava';
import { rename, writeFile } from 'node:fs/promises';
import { FerryError } from '../../engine/errors.ts';
import { eventually } from '../helpers/temp.ts';
import { captureLogger } from '../helpers/logger.ts';
import { ADT, channelsFolder, translatorFor } from './fixture.ts';

const version = (n: number) => `export default () => 'v${n}';\n`;

const output = async (translator: { run(input: { id: string; text: string }): Promise<{ outputs: string[] | null }> }) =>
  (await translator.run({ id: 'x', text: ADT })).outputs?.[0];

test('editing the script swaps in the new version for the next message', async (t) => {
  const { logger, lines } = captureLogger();
  const channels = await channelsFolder(t, { 'edit.ts': version(1) });
  const translator = await translatorFor(t, channels.file('edit.ts'), { logger });
  const first = translator.status();
  t.is(first.file, 'channels/edit.ts');
  t.regex(first.version, /^[0-9a-f]{16}$/);
  t.false(Number.isNaN(Date.parse(first.loadedAt)));
  t.is(first.error, undefined);
  t.is(await output(translator), 'v1');

  await channels.write('edit.ts', version(2));
  await eventually(() => (translator.status().version !== first.version ? true : undefined), 5000, 'the reload');
  t.is(await output(translator), 'v2');
  t.true(translator.status().loadedAt >= first.loadedAt);
  t.truthy(lines.find((l) => l.msg === 'script reloaded' && l.level === 30 && l.script === 'channels/edit.ts'));
});

test('an editor-style save (write a temp file, rename it over the script) reloads too', async (t) => {
  const channels = await channelsFolder(t, { 'rename.ts': version(1) });
  const translator = await translatorFor(t, channels.file('rename.ts'));
  const before = translator.status().version;
  await writeFile(channels.file('.rename.ts.tmp~'), version(2));
  await rename(channels.file('.rename.ts.tmp~'), channels.file('rename.ts'));
  await eventually(() => (translator.status().version !== before ? true : undefined), 5000, 'the reload');
  t.is(await output(translator), 'v2');
  // Once more: the watch survives the file being replaced.
  await writeFile(channels.file('.rename.ts.tmp~'), version(3));
  await rename(channels.file('.rename.ts.tmp~'), channels.file('rename.ts'));
  t.true(await eventually(async () => ((await output(translator)) === 'v3' ? true : undefined), 5000, 'the second reload'));
});

test('editing a bundled lib file reloads the scripts that import it', async (t) => {
  const channels = await channelsFolder(t, {
    'lib/suffix.ts': `export const suffix = 'a';\n`,
    'uses-lib.ts': `import { suffix } from './lib/suffix.ts';\nexport default () => 'v-' + suffix;\n`,
  });
  const translator = await translatorFor(t, channels.file('uses-lib.ts'));
  t.is(await output(translator), 'v-a');
  await channels.write('lib/suffix.ts', `export const suffix = 'b';\n`);
  t.true(await eventually(async () => ((await output(translator)) === 'v-b' ? true : undefined), 5000, 'the reload'));
});

test('a broken edit keeps the previous version running and is reported; fixing it clears the error', async (t) => {
  const { logger, lines } = captureLogger();
  const channels = await channelsFolder(t, { 'broken.ts': version(1) });
  const translator = await translatorFor(t, channels.file('broken.ts'), { logger });
  const good = translator.status();

  await channels.write('broken.ts', `export default () => {\n  return 'v2' +;\n};\n`);
  const error = await eventually(() => translator.status().error, 5000, 'the compile error');
  t.is(error.code, 'SCRIPT_COMPILE');
  t.is(error.message, 'channels/broken.ts:2:16: Unexpected ";"');
  t.false(Number.isNaN(Date.parse(error.at)));
  t.is(translator.status().version, good.version);
  t.is(translator.status().loadedAt, good.loadedAt);
  t.is(await output(translator), 'v1');
  // One line that says where, without esbuild's stack or the engine's.
  const logged = lines.filter((l) => l.level === 50 && l.code === 'SCRIPT_COMPILE');
  t.is(logged.length, 1);
  t.is(logged[0]!.msg, 'script reload failed; the previous version keeps running: channels/broken.ts:2:16: Unexpected ";"');
  t.false('err' in logged[0]!);
  t.false(JSON.stringify(logged[0]).includes('    at '));

  // A version that compiles but cannot load (no default export) is refused the same way.
  await channels.write('broken.ts', `export const oops = () => 'v3';\n`);
  await eventually(() => (translator.status().error?.code === 'SCRIPT_NO_DEFAULT_EXPORT' ? true : undefined), 5000, 'the load error');
  t.is(await output(translator), 'v1');

  await channels.write('broken.ts', version(4));
  await eventually(() => (translator.status().error ? undefined : true), 5000, 'the error to clear');
  t.not(translator.status().version, good.version);
  t.is(await output(translator), 'v4');
});

test('reverting a broken edit to the running version clears the error without a reload', async (t) => {
  const { logger, lines } = captureLogger();
  const channels = await channelsFolder(t, { 'revert.ts': version(1) });
  const translator = await translatorFor(t, channels.file('revert.ts'), { logger });
  const good = translator.status();
  await channels.write('revert.ts', 'export default (');
  await eventually(() => translator.status().error, 5000, 'the compile error');
  await channels.write('revert.ts', version(1));
  await eventually(() => (translator.status().error ? undefined : true), 5000, 'the error to clear');
  t.deepEqual(translator.status(), good);
  t.falsy(lines.find((l) => l.msg === 'script reloaded'));
});

test('a script that fails to compile at start errors each message until it is fixed', async (t) => {
  const { logger, lines } = captureLogger();
  const channels = await channelsFolder(t, { 'start.ts': `export default () => {\n  retrun 'x';\n};\n` });
  const translator = await translatorFor(t, channels.file('start.ts'), { logger });
  t.like(translator.status(), { file: 'channels/start.ts', version: '', loadedAt: '', error: { code: 'SCRIPT_COMPILE' } });
  t.truthy(lines.find((l) => l.level === 50 && l.msg.startsWith('script failed to load')));
  for (const id of ['1', '2']) {
    const error = await t.throwsAsync(translator.run({ id, text: ADT }), { instanceOf: FerryError });
    t.is(error!.code, 'SCRIPT_COMPILE');
    t.regex(error!.message, /^channels\/start\.ts:2:10: Expected ";" but found/);
    t.true(error!.permanent);
  }
  await channels.write('start.ts', version(1));
  await eventually(() => (translator.status().version ? true : undefined), 5000, 'the first load');
  t.is(translator.status().error, undefined);
  t.is(await output(translator), 'v1');
});

test('a script that does not exist yet is SCRIPT_NOT_FOUND until it is created', async (t) => {
  const channels = await channelsFolder(t);
  const translator = await translatorFor(t, channels.file('later.ts'));
  t.like(translator.status(), { version: '', error: { code: 'SCRIPT_NOT_FOUND', message: 'channels/later.ts does not exist' } });
  const error = await t.throwsAsync(translator.run({ id: '1', text: ADT }), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_NOT_FOUND');
  await channels.write('later.ts', version(1));
  await eventually(() => (translator.status().version ? true : undefined), 5000, 'the first load');
  t.is(await output(translator), 'v1');
});

test('after close, edits are no longer watched', async (t) => {
  const { logger, lines } = captureLogger();
  const channels = await channelsFolder(t, { 'closed.ts': version(1) });
  const translator = await translatorFor(t, channels.file('closed.ts'), { logger });
  await translator.close();
  const logged = lines.length;
  await channels.write('closed.ts', version(2));
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.is(lines.length, logged);
});
