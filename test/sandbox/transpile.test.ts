import test from 'ava';
import { symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../engine/errors.ts';
import { compileScript, editorColumn, type CompileError } from '../../engine/sandbox/transpile.ts';
import { channelsFolder } from './fixture.ts';

const HELPER = `export const shout = (s: string): string => s.toUpperCase() + '!';\n`;

test('imports from channels/lib are bundled into one script, with and without extensions', async (t) => {
  const channels = await channelsFolder(t, {
    'lib/shout.ts': HELPER,
    'lib/codes.json': '{ "A01": "admit" }',
    'lib/nested/twice.ts': `import { shout } from '../shout';\nexport const twice = (s: string) => shout(s) + shout(s);\n`,
    'main.ts': `import { shout } from './lib/shout.ts';\nimport { twice } from './lib/nested/twice.ts';\nimport codes from './lib/codes.json';\nexport default (msg: Message) => shout(msg.text) + twice('x') + codes.A01;\n`,
  });
  const script = await compileScript(channels.file('main.ts'));
  t.is(script.name, 'channels/main.ts');
  t.is(script.file, channels.file('main.ts'));
  t.deepEqual(
    [...script.inputs].sort(),
    ['lib/codes.json', 'lib/nested/twice.ts', 'lib/shout.ts', 'main.ts'].map((f) => channels.file(f)),
  );
  t.regex(script.version, /^[0-9a-f]{16}$/);
  t.notRegex(script.code, /\bimport\b|\brequire\(/);
  t.regex(script.code, /toUpperCase\(\) \+ "!"/);
});

test('the version is a content hash: unchanged sources hit the cache, any changed input makes a new version', async (t) => {
  const channels = await channelsFolder(t, {
    'lib/shout.ts': HELPER,
    'main.ts': `import { shout } from './lib/shout.ts';\nexport default (msg: Message) => shout(msg.text);\n`,
  });
  const first = await compileScript(channels.file('main.ts'));
  t.is(await compileScript(channels.file('main.ts')), first);
  await channels.write('lib/shout.ts', HELPER.replace("'!'", "'!!'"));
  const second = await compileScript(channels.file('main.ts'));
  t.not(second.version, first.version);
  await channels.write('lib/shout.ts', HELPER);
  t.is((await compileScript(channels.file('main.ts'))).version, first.version);
});

test('the same sources in another folder give the same version', async (t) => {
  const files = { 'lib/shout.ts': HELPER, 'main.ts': `import { shout } from './lib/shout.ts';\nexport default (msg: Message) => shout(msg.text);\n` };
  const [a, b] = await Promise.all([channelsFolder(t, files), channelsFolder(t, files)]);
  const [first, second] = await Promise.all([compileScript(a.file('main.ts')), compileScript(b.file('main.ts'))]);
  t.not(first.file, second.file);
  t.is(first.version, second.version);
});

test('locate maps bundle positions back to the user’s files', async (t) => {
  const channels = await channelsFolder(t, {
    'lib/shout.ts': HELPER,
    'main.ts': `import { shout } from './lib/shout.ts';\n\nexport default (msg: Message) => shout(msg.text);\n`,
  });
  const script = await compileScript(channels.file('main.ts'));
  const lines = script.code.split('\n');
  const helperLine = lines.findIndex((l) => l.includes('toUpperCase')) + 1;
  t.like(script.locate(helperLine, lines[helperLine - 1]!.indexOf('s.toUpperCase') + 1), { file: 'channels/lib/shout.ts', line: 1 });
  const mainLine = lines.findIndex((l) => l.includes('shout(msg.text)')) + 1;
  t.like(script.locate(mainLine, lines[mainLine - 1]!.indexOf('shout(msg') + 1), { file: 'channels/main.ts', line: 3, column: 34 });
});

const forbidden: Array<[string, string, string, RegExp]> = [
  ['an npm package', `import { pino } from 'pino';`, 'pino', /npm packages, node:\* modules and absolute paths are not available/],
  ['a node: module', `import { readFileSync } from 'node:fs';`, 'node:fs', /not allowed/],
  ['a bare node module', `import fs from 'fs';`, 'fs', /not allowed/],
  ['an absolute path', `import x from '/etc/hosts.ts';`, '/etc/hosts.ts', /not allowed/],
  ['a path outside the channels folder', `import x from '../outside.ts';`, '../outside.ts', /it points outside the channels folder/],
  ['a require() call', `const fs = require('fs');`, 'fs', /not allowed/],
  ['an import() of a literal', `const load = () => import('node:child_process');`, 'node:child_process', /not allowed/],
];

for (const [what, statement, specifier, why] of forbidden) {
  test(`importing ${what} is a compile error naming file:line:col`, async (t) => {
    const channels = await channelsFolder(t, {
      'bad.ts': `// a channel\ndeclare const require: (name: string) => unknown;\n${statement}\nexport default (msg: Message) => msg;\n`,
    });
    await writeFile(path.join(channels.root, 'outside.ts'), 'export default 1;');
    const error = await t.throwsAsync(compileScript(channels.file('bad.ts')), { instanceOf: FerryError });
    t.is(error!.code, 'SCRIPT_COMPILE');
    const column = statement.indexOf(`'${specifier}'`) + 1;
    t.is(error!.message.split(' ')[0], `channels/bad.ts:3:${column}:`);
    t.true(error!.message.includes(`import ${JSON.stringify(specifier)} is not allowed`), error!.message);
    t.regex(error!.message, why);
    const [first] = error!.details!.errors as CompileError[];
    t.like(first, { file: channels.file('bad.ts'), line: 3, column });
  });
}

test('an unused forbidden import is still an error', async (t) => {
  const channels = await channelsFolder(t, { 'unused.ts': `import fs from 'node:fs';\nexport default () => 'x';\n` });
  const error = await t.throwsAsync(compileScript(channels.file('unused.ts')), { instanceOf: FerryError });
  t.regex(error!.message, /^channels\/unused\.ts:1:16: import "node:fs" is not allowed/);
});

test('type-only imports of forbidden modules are fine: they vanish at compile time', async (t) => {
  const channels = await channelsFolder(t, { 'types.ts': `import type { Logger } from 'pino';\nexport default (msg: Message, log?: Logger) => msg;\n` });
  t.truthy(await compileScript(channels.file('types.ts')));
});

test('a forbidden import inside a lib file names that file', async (t) => {
  const channels = await channelsFolder(t, {
    'lib/net.ts': `\nimport net from 'node:net';\nexport const n = net;\n`,
    'main.ts': `import { n } from './lib/net.ts';\nexport default () => String(n);\n`,
  });
  const error = await t.throwsAsync(compileScript(channels.file('main.ts')), { instanceOf: FerryError });
  t.regex(error!.message, /^channels\/lib\/net\.ts:2:17: import "node:net" is not allowed/);
});

test('a symlink in channels/ that leads outside it is refused', async (t) => {
  const channels = await channelsFolder(t, { 'main.ts': `import x from './lib/link.ts';\nexport default () => String(x);\n` });
  await writeFile(path.join(channels.root, 'secret.ts'), 'export default 42;');
  await channels.write('lib/.keep', '');
  await symlink(path.join(channels.root, 'secret.ts'), channels.file('lib/link.ts'));
  const error = await t.throwsAsync(compileScript(channels.file('main.ts')), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_COMPILE');
  t.regex(error!.message, /outside the channels folder/);
});

test('syntax errors are SCRIPT_COMPILE with file:line:col', async (t) => {
  const channels = await channelsFolder(t, { 'syntax.ts': `export default (msg: Message) => {\n  const x = ;\n  return msg;\n};\n` });
  const error = await t.throwsAsync(compileScript(channels.file('syntax.ts')), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_COMPILE');
  t.is(error!.message, 'channels/syntax.ts:2:13: Unexpected ";"');
  t.like(error!.details, { file: 'channels/syntax.ts', errors: [{ file: channels.file('syntax.ts'), line: 2, column: 13, message: 'Unexpected ";"' }] });
});

// esbuild counts columns from 0, in UTF-8 bytes; editors (and tsc) from 1, in UTF-16 code units. On
// this line the ';' is at esbuild's column 30 and the editor's 28 (the text before it has three
// two-byte letters); before the fix Ferry said 31, and esbuild's own message in the log said 30.
test('the column of a syntax error is the one an editor shows, also after non-ASCII text', async (t) => {
  const line = `  const s = 'ÄÖÜ'; let x = ;`;
  const channels = await channelsFolder(t, { 'syntax.ts': `export default (msg: Message) => {\n${line}\n  return msg;\n};\n` });
  const error = await t.throwsAsync(compileScript(channels.file('syntax.ts')), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_COMPILE');
  const column = line.lastIndexOf(';') + 1;
  t.is(column, 28);
  t.is(error!.message, `channels/syntax.ts:2:${column}: Unexpected ";"`);
  t.like(error!.details, { errors: [{ line: 2, column }] });
  // An astral character is two UTF-16 units (four UTF-8 bytes), as editors count it.
  t.is(editorColumn({ lineText: 'const e = "😀"; ;', column: Buffer.byteLength('const e = "😀"; ') }), 'const e = "😀"; '.length + 1);
});

test('a missing import is SCRIPT_COMPILE naming the importing line', async (t) => {
  const channels = await channelsFolder(t, { 'missing.ts': `import { nope } from './lib/nope.ts';\nexport default () => nope;\n` });
  const error = await t.throwsAsync(compileScript(channels.file('missing.ts')), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_COMPILE');
  t.regex(error!.message, /^channels\/missing\.ts:1:22: Could not resolve "\.\/lib\/nope\.ts"/);
});

test('a script file that does not exist is SCRIPT_NOT_FOUND', async (t) => {
  const channels = await channelsFolder(t);
  const error = await t.throwsAsync(compileScript(channels.file('ghost.ts')), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_NOT_FOUND');
  t.is(error!.message, 'channels/ghost.ts does not exist');
});
