import test from 'ava';
import { FerryError } from '../../engine/errors.ts';
import { ADT, LIMITS, channelsFolder, runScript, translatorFor } from './fixture.ts';

const DOE_UPPER = ADT.replace('doe^john^q', 'DOE^john^q');

const results: Array<[string, string, string | null, string[] | null]> = [
  ['a string', `export default () => 'plain text'`, ADT, ['plain text']],
  ['the message, edited', `export default function (msg: Message) { msg.set('PID-5.1', msg.get('PID-5.1').toUpperCase()); return msg; }`, ADT, [DOE_UPPER]],
  ['the message, untouched', `export default (msg: Message) => msg`, ADT, [ADT]],
  ['a segment', `export default (msg: Message) => msg.segments('PID')[0]`, ADT, ['PID|1||12345^^^HOSP^MR~999^^^SSA^SS||doe^john^q||19800101|M']],
  ['a number', `export default () => 42`, ADT, ['42']],
  ['a boolean', `export default () => false`, ADT, ['false']],
  ['a plain object', `export default (msg: Message) => ({ mrn: msg.get('PID-3.1'), name: msg.get('PID-5') })`, ADT, ['{"mrn":"12345","name":"doe^john^q"}']],
  ['an array of mixed outputs', `export default (msg: Message) => ['one', null, { two: 2 }, 3, msg.segments('MSH')[0], undefined]`, ADT, ['one', '{"two":2}', '3', 'MSH|^~\\&|REG|HOSP|ARCHIVE|HOSP|20240101120000||ADT^A01|MSG0001|P|2.5']],
  ['null (filtered)', `export default () => null`, ADT, null],
  ['undefined (filtered)', `export default () => {}`, ADT, null],
  ['an empty array (filtered)', `export default () => []`, ADT, null],
  ['an async result', `export default async (msg: Message) => { await null; return msg.get('MSH-9'); }`, ADT, ['ADT^A01']],
  ['a non-HL7 message as text', `export default (msg: Message) => JSON.parse(msg.text).name.toUpperCase()`, '{"name":"doe"}', ['DOE']],
  ['a non-HL7 message passed through', `export default (msg: Message) => msg`, 'a,b,c\n1,2,3\n', ['a,b,c\n1,2,3\n']],
  ['ctx fields', `export default (msg: Message, ctx: Context) => ctx.channel + '/' + ctx.id`, ADT, ['test/m1']],
];

for (const [what, code, text, outputs] of results) {
  test(`returning ${what}`, async (t) => {
    const result = await runScript(t, code, text ?? ADT);
    t.deepEqual(result.outputs, outputs);
  });
}

test('a filter keeps ADT and drops the rest', async (t) => {
  const channels = await channelsFolder(t, {
    'adt.ts': `export default (msg: Message) => (msg.get('MSH-9.1') === 'ADT' ? msg : null);`,
  });
  const translator = await translatorFor(t, channels.file('adt.ts'));
  t.deepEqual((await translator.run({ id: '1', text: ADT })).outputs, [ADT]);
  t.is((await translator.run({ id: '2', text: ADT.replace('ADT^A01', 'ORU^R01') })).outputs, null);
});

test('ctx.log and console collect formatted lines with levels, per message', async (t) => {
  const channels = await channelsFolder(t, {
    'log.ts': `
      export default (msg: Message, ctx: Context) => {
        const cycle: Record<string, unknown> = { a: 1 };
        cycle.self = cycle;
        ctx.log('mrn', msg.get('PID-3.1'), { n: [1, 2] }, undefined, null, 7n, () => 1);
        console.log('plain');
        console.info(cycle);
        console.debug('dbg');
        console.warn('careful');
        console.error(new TypeError('bad thing'));
        ctx.log('x'.repeat(5000) as unknown as object, { big: 'y'.repeat(5000) });
        return null;
      };`,
  });
  const translator = await translatorFor(t, channels.file('log.ts'));
  const { logs } = await translator.run({ id: '1', text: ADT });
  t.deepEqual(logs.slice(0, 6), [
    { level: 'info', message: 'mrn 12345 {"n":[1,2]} undefined null 7n [Function (anonymous)]' },
    { level: 'info', message: 'plain' },
    { level: 'info', message: '{"a":1,"self":"[Circular]"}' },
    { level: 'debug', message: 'dbg' },
    { level: 'warn', message: 'careful' },
    { level: 'error', message: 'TypeError: bad thing' },
  ]);
  // Strings go in whole; other values are JSON capped at 2000 characters.
  t.true(logs[6]!.message.startsWith(`${'x'.repeat(5000)} {"big":"yyy`));
  t.regex(logs[6]!.message, /… \(\d+ more characters\)$/);
  t.true(logs[6]!.message.length < 5000 + 2100);
  // The next message starts with an empty log.
  t.is((await translator.run({ id: '2', text: ADT })).logs.length, 7);
});

test('a flood of log lines is capped and says how many were dropped', async (t) => {
  const result = await runScript(t, `export default (msg: Message, ctx: Context) => { for (let i = 0; i < 1500; i++) ctx.log(i); return 'ok'; }`);
  t.deepEqual(result.outputs, ['ok']);
  t.is(result.logs.length, 1001);
  t.deepEqual(result.logs[999], { level: 'info', message: '999' });
  t.deepEqual(result.logs[1000], { level: 'warn', message: '500 more log lines dropped (limit 1000 per message)' });
});

const scriptError = async (t: import('ava').ExecutionContext, code: string, text = ADT): Promise<FerryError> => {
  const error = await t.throwsAsync(runScript(t, code, text), { instanceOf: FerryError });
  return error!;
};

test('a thrown Error maps to the script file:line:col with a mapped stack and the logs so far', async (t) => {
  const channels = await channelsFolder(t, {
    'lib/check.ts': `export const requireMrn = (mrn: string): string => {\n  if (mrn === '') throw new Error('no MRN');\n  return mrn;\n};\n`,
    'throws.ts': `import { requireMrn } from './lib/check.ts';\n\nexport default function (msg: Message, ctx: Context) {\n  ctx.log('checking');\n  return requireMrn(msg.get('PID-3.1'));\n}\n`,
  });
  const translator = await translatorFor(t, channels.file('throws.ts'));
  const error = await t.throwsAsync(translator.run({ id: '1', text: ADT.replace('12345^^^HOSP^MR~999^^^SSA^SS', '') }), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_THREW');
  t.is(error!.message, 'channels/lib/check.ts:2:25: Error: no MRN');
  t.like(error!.details, { file: 'channels/lib/check.ts', line: 2, column: 25, logs: [{ level: 'info', message: 'checking' }] });
  const stack = error!.details!.stack as string;
  t.regex(stack, /^Error: no MRN\n\s+at requireMrn \(channels\/lib\/check\.ts:2:25\)\n\s+at .*\(channels\/throws\.ts:5:10\)/);
  t.notRegex(stack, /ferry-(script|prelude)/);
  t.true(error!.permanent);
});

const thrownValues: Array<[string, string, string]> = [
  ['a string', `throw 'no PID segment'`, 'channels/script.ts: threw a string: no PID segment'],
  ['a number', `throw 42`, 'channels/script.ts: threw a number: 42'],
  ['an object', `throw { reason: 'bad', codes: [1, 2] }`, 'channels/script.ts: threw an object: {"reason":"bad","codes":[1,2]}'],
  ['undefined', `throw undefined`, 'channels/script.ts: threw undefined'],
  ['null', `throw null`, 'channels/script.ts: threw null'],
  ['an Error without a message', `throw new RangeError()`, 'channels/script.ts:1:30: RangeError'],
];

for (const [what, statement, message] of thrownValues) {
  test(`throwing ${what} gives a readable SCRIPT_THREW`, async (t) => {
    const error = await scriptError(t, `export default () => { ${statement}; };`);
    t.is(error.code, 'SCRIPT_THREW');
    t.is(error.message, message);
  });
}

test('an async rejection is SCRIPT_THREW too', async (t) => {
  const error = await scriptError(t, `export default async () => {\n  await null;\n  throw new TypeError('late');\n};`);
  t.is(error.message, 'channels/script.ts:3:9: TypeError: late');
});

test('HL7 accessors on a non-HL7 message throw HL7_NOT_HL7 inside the script', async (t) => {
  const error = await scriptError(t, `export default (msg: Message) => msg.get('PID-3');`, '{"json":true}');
  t.is(error.code, 'SCRIPT_THREW');
  t.is(error.details!.code, 'HL7_NOT_HL7');
  t.regex(error.message, /^channels\/script\.ts:1:38: HL7_NOT_HL7: not an HL7 v2 message/);
});

test('a script can catch HL7 errors and fall back to the text', async (t) => {
  const result = await runScript(t, `export default (msg: Message) => { try { return msg.get('PID-3.1'); } catch (e) { return 'text:' + msg.text; } };`, 'hello');
  t.deepEqual(result.outputs, ['text:hello']);
});

const badResults: Array<[string, string, RegExp]> = [
  ['a function', `() => () => 1`, /the result is a function/],
  ['a symbol', `() => Symbol('s')`, /the result is a symbol/],
  ['a bigint', `() => 10n`, /the result is a bigint/],
  ['NaN', `() => NaN`, /the result is NaN, which JSON cannot represent/],
  ['a cycle', `() => { const a: Record<string, unknown> = {}; a.self = a; return a; }`, /the result cannot be converted to JSON: Converting circular structure to JSON/],
  ['a nested array', `() => ['a', ['b']]`, /element 1 of the result is an array; return a flat array of outputs/],
  ['a function in an array', `() => ['a', () => 1]`, /element 1 of the result is a function/],
  ['an un-awaited promise in an array', `() => [Promise.resolve('x')]`, /element 0 of the result is a promise; await it/],
  ['outputs over 16 MB', `() => ['x'.repeat(9 * 1024 * 1024), 'y'.repeat(8 * 1024 * 1024)]`, /the outputs total at least 17825792 bytes, more than the 16777216-byte limit per message/],
  ['multi-byte outputs over 16 MB', `() => 'é'.repeat(8 * 1024 * 1024 + 1)`, /the outputs total 16777218 bytes, more than the 16777216-byte limit/],
];

for (const [what, fn, reason] of badResults) {
  test(`returning ${what} is SCRIPT_BAD_RESULT`, async (t) => {
    const error = await scriptError(t, `export default ${fn};`);
    t.is(error.code, 'SCRIPT_BAD_RESULT');
    t.regex(error.message, /^channels\/script\.ts: /);
    t.regex(error.message, reason);
  });
}

test('more outputs than scriptLimits.maxOutputs (default 1000) is SCRIPT_TOO_MANY_OUTPUTS, permanent, naming the limit and its key', async (t) => {
  // The attack of issue 9: a 1 MB message split into 1,000,001 outputs.
  const error = await scriptError(t, `export default (msg: Message) => msg.text.split('\\n');`, '\n'.repeat(1_000_000));
  t.is(error.code, 'SCRIPT_TOO_MANY_OUTPUTS');
  t.true(error.permanent);
  t.is(
    error.message,
    'channels/script.ts: more than 1000 outputs for one message (returned and ctx.deliver together); nothing was queued. The limit is scriptLimits.maxOutputs in channels.yaml',
  );
  // Up to the limit is fine, and nulls in the array are not outputs.
  t.is((await runScript(t, `export default () => Array.from({ length: 1000 }, (_, i) => String(i));`)).outputs!.length, 1000);
  t.deepEqual((await runScript(t, `export default () => [...new Array(5000).fill(null), 'only'];`)).outputs, ['only']);
});

test('ctx.deliver counts against maxOutputs: past it the message errors, even when the script catches the throw', async (t) => {
  const channels = await channelsFolder(t, {
    'deliver.ts': `export default (msg: Message, ctx: Context) => {
  const [delivered, returned, caught] = msg.text.split(' ').map(Number);
  for (let i = 0; i < delivered; i++) {
    try { ctx.deliver('d' + i); } catch (e) { if (!caught) throw e; }
  }
  return Array.from({ length: returned }, (_, i) => 'r' + i);
};`,
  });
  const translator = await translatorFor(t, channels.file('deliver.ts'), { limits: { ...LIMITS, maxOutputs: 3 } });
  t.deepEqual((await translator.run({ id: '1', text: '2 1 0' })).outputs, ['d0', 'd1', 'r0']);
  for (const text of ['4 0 0', '4 0 1', '2 2 0', '0 4 0', '10000 0 1']) {
    const error = await t.throwsAsync(translator.run({ id: text, text }), { instanceOf: FerryError });
    t.is(error!.code, 'SCRIPT_TOO_MANY_OUTPUTS', text);
    t.regex(error!.message, /more than 3 outputs for one message/, text);
  }
});

test('a script without a default export is SCRIPT_NO_DEFAULT_EXPORT', async (t) => {
  const channels = await channelsFolder(t, { 'none.ts': `export const transform = (msg: Message) => msg;`, 'notfn.ts': `export default 42;` });
  for (const [file, reason] of [
    ['none.ts', /the script has no default export/],
    ['notfn.ts', /the default export is a number, not a function/],
  ] as const) {
    const translator = await translatorFor(t, channels.file(file));
    t.like(translator.status().error, { code: 'SCRIPT_NO_DEFAULT_EXPORT' });
    const error = await t.throwsAsync(translator.run({ id: '1', text: ADT }), { instanceOf: FerryError });
    t.is(error!.code, 'SCRIPT_NO_DEFAULT_EXPORT');
    t.regex(error!.message, reason);
  }
});

test('a script whose top-level code throws does not load', async (t) => {
  const channels = await channelsFolder(t, { 'top.ts': `const table = JSON.parse('{oops');\nexport default () => table;` });
  const translator = await translatorFor(t, channels.file('top.ts'));
  t.like(translator.status(), { version: '', error: { code: 'SCRIPT_THREW' } });
  t.regex(translator.status().error!.message, /^channels\/top\.ts:1:20: SyntaxError: /);
});

test('module state persists between messages of one version', async (t) => {
  const channels = await channelsFolder(t, { 'count.ts': `let n = 0;\nexport default () => String(++n);` });
  const translator = await translatorFor(t, channels.file('count.ts'));
  const outputs = [];
  for (let i = 0; i < 3; i++) outputs.push((await translator.run({ id: String(i), text: ADT })).outputs![0]);
  t.deepEqual(outputs, ['1', '2', '3']);
});

test('messages are translated one at a time, in order', async (t) => {
  const channels = await channelsFolder(t, {
    'slow.ts': `let busy = false;\nexport default async (msg: Message, ctx: Context) => {\n  if (busy) throw new Error('overlap');\n  busy = true;\n  for (let i = 0; i < 20; i++) await null;\n  busy = false;\n  return ctx.id;\n};`,
  });
  const translator = await translatorFor(t, channels.file('slow.ts'));
  const ids = Array.from({ length: 20 }, (_, i) => String(i));
  const results = await Promise.all(ids.map((id) => translator.run({ id, text: ADT })));
  t.deepEqual(results.map((r) => r.outputs![0]), ids);
});

test('the bundled example adt-archive.ts upper-cases the name, logs the MRN and filters non-ADT', async (t) => {
  const translator = await translatorFor(t, new URL('../../channels/adt-archive.ts', import.meta.url).pathname);
  const result = await translator.run({ id: '1', text: ADT });
  t.deepEqual(result.outputs, [ADT.replace('doe^john^q', 'DOE^JOHN^q')]);
  t.deepEqual(result.logs, [{ level: 'info', message: 'ADT^A01 for MRN 12345: DOE, JOHN q' }]);
  t.deepEqual((await translator.run({ id: '2', text: ADT.replace('ADT^A01', 'ORM^O01') })).outputs, null);
});
