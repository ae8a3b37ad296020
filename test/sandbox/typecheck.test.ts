import test from 'ava';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadConfig } from '../../engine/config/load.ts';
import { checkScripts } from '../../engine/sandbox/check.ts';
import { typecheckScripts } from '../../engine/sandbox/typecheck.ts';
import { channelsFolder } from './fixture.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const repoChannels = path.join(repo, 'channels');

test('a type error is reported with its absolute file, line and column', async (t) => {
  const channels = await channelsFolder(t, {
    'typo.ts': `export default function (msg: Message, ctx: Context) {\n  const count: number = msg.get('PID-3.1');\n  ctx.log(count);\n  return msg;\n}\n`,
  });
  const diagnostics = await typecheckScripts([channels.file('typo.ts')], channels.dir);
  t.deepEqual(diagnostics, [
    { file: channels.file('typo.ts'), line: 2, column: 9, message: "TS2322: Type 'string' is not assignable to type 'number'." },
  ]);
});

test('Node and DOM globals are type errors, as they are missing at run time', async (t) => {
  const channels = await channelsFolder(t, {
    'globals.ts': `export default () => {\n  const env = process.env.HOME;\n  void fetch('http://example.com');\n  return env;\n};\n`,
  });
  const diagnostics = await typecheckScripts([channels.file('globals.ts')], channels.dir);
  t.deepEqual(
    diagnostics.map((d) => [d.line, d.column, d.message.split(':')[0]]),
    [
      [2, 15, 'TS2591'],
      [3, 8, 'TS2304'],
    ],
  );
  t.regex(diagnostics[0]!.message, /Cannot find name 'process'/);
  t.regex(diagnostics[1]!.message, /Cannot find name 'fetch'/);
});

test('errors in imported lib files name those files; multi-line messages stay whole', async (t) => {
  const channels = await channelsFolder(t, {
    'lib/shape.ts': `type Shape = { a: { b: number } };\nconst raw = { a: { b: 'x' } };\nexport const shape: Shape = raw;\n`,
    'main.ts': `import { shape } from './lib/shape.ts';\nexport default (msg: Message) => String(shape.a.b) + msg.text;\n`,
  });
  const diagnostics = await typecheckScripts([channels.file('main.ts')], channels.dir);
  t.is(diagnostics.length, 1);
  t.like(diagnostics[0], { file: channels.file('lib/shape.ts'), line: 3, column: 14 });
  t.is(
    diagnostics[0]!.message,
    "TS2322: Type '{ a: { b: string; }; }' is not assignable to type 'Shape'.\n" +
      "  The types of 'a.b' are incompatible between these types.\n" +
      "    Type 'string' is not assignable to type 'number'.",
  );
});

test('clean scripts give no diagnostics, without a ferry.d.ts in their folder (the shipped one is used)', async (t) => {
  const channels = await channelsFolder(t, {
    'clean.ts': `export default async (msg: Message, ctx: Context) => {\n  console.warn(ctx.channel);\n  return msg.segments('OBX').map((s: Segment) => s.get('5'));\n};\n`,
  });
  t.deepEqual(await typecheckScripts([channels.file('clean.ts')], channels.dir), []);
});

test('the example scripts type-check, with typecheckScripts and with tsc -p channels/tsconfig.json', async (t) => {
  t.deepEqual(await typecheckScripts([path.join(repoChannels, 'adt-archive.ts')], repoChannels), []);
  const tsc = path.join(repo, 'node_modules', '.bin', 'tsc');
  const { stdout } = await promisify(execFile)(tsc, ['-p', path.join(repoChannels, 'tsconfig.json'), '--pretty', 'false'], { cwd: repo });
  t.is(stdout, '');
});

test('tsc -p channels/tsconfig.json flags process in a channel script', async (t) => {
  const channels = await channelsFolder(t, { 'env.ts': `export default () => process.env.SECRET;\n` });
  await writeFile(channels.file('tsconfig.json'), await readFile(path.join(repoChannels, 'tsconfig.json'), 'utf8'));
  await writeFile(channels.file('ferry.d.ts'), await readFile(path.join(repoChannels, 'ferry.d.ts'), 'utf8'));
  const tsc = path.join(repo, 'node_modules', '.bin', 'tsc');
  const error = await t.throwsAsync(promisify(execFile)(tsc, ['-p', channels.file('tsconfig.json'), '--pretty', 'false'], { cwd: channels.root }));
  t.regex((error as Error & { stdout: string }).stdout, /env\.ts\(1,22\): error TS2591: Cannot find name 'process'/);
});

test('checkScripts reports compile, load and type problems of every channel script', async (t) => {
  const channels = await channelsFolder(t, {
    'good.ts': `export default (msg: Message) => msg;\n`,
    'syntax.ts': `export default (msg: Message) => {\n  return msg +;\n};\n`,
    'nodefault.ts': `export const f = (msg: Message) => msg;\n`,
    'typed.ts': `export default (msg: Message) => {\n  const n: number = msg.text;\n  return n;\n};\n`,
  });
  const names = ['good', 'syntax', 'nodefault', 'typed'];
  await writeFile(
    path.join(channels.root, 'channels.yaml'),
    `channels:\n${names.map((n) => `  - name: ${n}\n    source: { type: channel }\n    script: channels/${n}.ts\n    destinations:\n      - { name: out, type: file, dir: ./out }\n`).join('')}`,
  );
  const config = await loadConfig(path.join(channels.root, 'channels.yaml'));
  const problems = await checkScripts(config);
  t.deepEqual(
    problems.map((p) => [path.relative(channels.root, p.file), p.line, p.column, p.message]),
    [
      ['channels/syntax.ts', 2, 15, 'Unexpected ";"'],
      ['channels/nodefault.ts', 0, 0, 'SCRIPT_NO_DEFAULT_EXPORT: the script has no default export; write `export default function (msg: Message, ctx: Context) { … }`'],
      ['channels/typed.ts', 2, 9, "TS2322: Type 'string' is not assignable to type 'number'."],
    ],
  );
});
