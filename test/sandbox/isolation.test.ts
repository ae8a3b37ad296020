import test from 'ava';
import { FerryError } from '../../engine/errors.ts';
import { ADT, channelsFolder, runScript, translatorFor } from './fixture.ts';

const LIMITS = { memoryBytes: 32 * 1024 * 1024, timeoutMs: 300 };

// Each script misbehaves only on the message 'bad', so the next (good) message shows recovery.
const runaways: Array<[string, string]> = [
  ['a synchronous infinite loop', `for (;;) {}`],
  ['a promise that never settles', `await new Promise(() => {});`],
  ['a loop after an await', `await null;\n    for (;;) {}`],
  ['a loop in a promise chain', `await Promise.resolve().then(() => { for (;;) {} });`],
];

for (const [what, body] of runaways) {
  test.serial(`${what} is SCRIPT_TIMEOUT within the limit, and the next message succeeds`, async (t) => {
    const channels = await channelsFolder(t, {
      'runaway.ts': `export default async (msg: Message) => {\n  if (msg.text === 'bad') {\n    ${body}\n  }\n  return 'ok ' + msg.text;\n};`,
    });
    const translator = await translatorFor(t, channels.file('runaway.ts'), { limits: LIMITS });
    const started = Date.now();
    const error = await t.throwsAsync(translator.run({ id: '1', text: 'bad' }), { instanceOf: FerryError });
    const elapsed = Date.now() - started;
    t.is(error!.code, 'SCRIPT_TIMEOUT');
    t.is(error!.message, 'channels/runaway.ts ran past its 300 ms time limit');
    t.true(error!.permanent);
    // Ended by the limit, not by something slower: the slack is for a loaded CI machine.
    t.true(elapsed >= 290 && elapsed < LIMITS.timeoutMs + 1500, `took ${elapsed} ms`);
    t.deepEqual((await translator.run({ id: '2', text: 'good' })).outputs, ['ok good']);
  });
}

test.serial('a timeout resets module state: the isolate is recreated', async (t) => {
  const channels = await channelsFolder(t, {
    'state.ts': `let n = 0;\nexport default (msg: Message) => {\n  n++;\n  if (msg.text === 'bad') for (;;) {}\n  return String(n);\n};`,
  });
  const translator = await translatorFor(t, channels.file('state.ts'), { limits: LIMITS });
  t.deepEqual((await translator.run({ id: '1', text: 'a' })).outputs, ['1']);
  t.deepEqual((await translator.run({ id: '2', text: 'b' })).outputs, ['2']);
  await t.throwsAsync(translator.run({ id: '3', text: 'bad' }), { instanceOf: FerryError, message: /time limit/ });
  t.deepEqual((await translator.run({ id: '4', text: 'c' })).outputs, ['1']);
});

test.serial('messages queued behind a runaway get their own full time budget', async (t) => {
  const channels = await channelsFolder(t, {
    'queue.ts': `export default (msg: Message) => {\n  if (msg.text === 'bad') for (;;) {}\n  return msg.text;\n};`,
  });
  const translator = await translatorFor(t, channels.file('queue.ts'), { limits: LIMITS });
  const [bad, good] = await Promise.allSettled([translator.run({ id: '1', text: 'bad' }), translator.run({ id: '2', text: 'good' })]);
  t.is(bad.status, 'rejected');
  t.deepEqual(good.status === 'fulfilled' ? good.value.outputs : good.reason, ['good']);
});

const hogs: Array<[string, string]> = [
  ['arrays', `const keep: number[][] = [];\n    for (;;) keep.push(new Array(100_000).fill(Math.random()));`],
  ['objects', `const keep: object[] = [];\n    for (let i = 0; ; i++) keep.push({ i, s: 'x' + i, nested: { a: [i, i] } });`],
  ['buffers', `const keep: ArrayBuffer[] = [];\n    for (;;) keep.push(new ArrayBuffer(1024 * 1024));`],
];

for (const [what, body] of hogs) {
  test.serial(`filling memory with ${what} is SCRIPT_MEMORY, and the next message succeeds`, async (t) => {
    const channels = await channelsFolder(t, {
      'hog.ts': `export default (msg: Message) => {\n  if (msg.text === 'bad') {\n    ${body}\n  }\n  return 'ok';\n};`,
    });
    const translator = await translatorFor(t, channels.file('hog.ts'), { limits: { memoryBytes: 16 * 1024 * 1024, timeoutMs: 5000 } });
    const error = await t.throwsAsync(translator.run({ id: '1', text: 'bad' }), { instanceOf: FerryError });
    t.is(error!.code, 'SCRIPT_MEMORY');
    t.true(error!.message.startsWith('channels/hog.ts exceeded its 16 MB memory limit'), error!.message);
    t.deepEqual((await translator.run({ id: '2', text: 'good' })).outputs, ['ok']);
  });
}

// What a script can reach: nothing of the host.
const probes: Array<[string, string, string]> = [
  ['process', `typeof (globalThis as any).process`, 'undefined'],
  ['require', `typeof (globalThis as any).require`, 'undefined'],
  ['module and exports', `typeof (globalThis as any).module + typeof (globalThis as any).exports`, 'undefinedundefined'],
  ['WebAssembly (its memories escape the memory limit)', `typeof (globalThis as any).WebAssembly`, 'undefined'],
  ['network and timers', `[typeof (globalThis as any).fetch, typeof (globalThis as any).XMLHttpRequest, typeof (globalThis as any).WebSocket, typeof (globalThis as any).setTimeout].join()`, 'undefined,undefined,undefined,undefined'],
  ['the host via the Function constructor', `(globalThis as any).constructor.constructor('return typeof process')()`, 'undefined'],
  ['the host via an arrow function constructor', `(() => {}).constructor('return typeof this?.process + typeof globalThis.process')()`, 'undefinedundefined'],
  ['the host via indirect eval', `(0, eval)('typeof process + typeof require')`, 'undefinedundefined'],
  ['globals the engine set', `Object.getOwnPropertyNames(globalThis).filter((k) => !(k in ({} as any)) && /ivm|ferry|__/i.test(k)).join()`, ''],
];

for (const [what, expression, expected] of probes) {
  test(`scripts cannot reach ${what}`, async (t) => {
    const result = await runScript(t, `export default () => String(${expression});`);
    t.deepEqual(result.outputs, [expected]);
  });
}

test('process through the Function constructor is a ReferenceError', async (t) => {
  const error = await t.throwsAsync(runScript(t, `export default () => (globalThis as any).constructor.constructor('return process')().env;`), {
    instanceOf: FerryError,
  });
  t.is(error!.code, 'SCRIPT_THREW');
  t.regex(error!.message, /ReferenceError: process is not defined/);
});

test('a computed require() fails inside the sandbox', async (t) => {
  const error = await t.throwsAsync(
    runScript(t, `declare const require: (name: string) => unknown;\nexport default () => { const name = 'f' + 's'; return String(require(name)); };`),
    { instanceOf: FerryError },
  );
  t.is(error!.code, 'SCRIPT_THREW');
  t.regex(error!.message, /Dynamic require of "fs" is not supported/);
});

test('a computed import() is rejected inside the sandbox', async (t) => {
  const error = await t.throwsAsync(
    runScript(t, `export default async () => { const name = 'node:' + 'fs'; const fs = await import(name); return String(Object.keys(fs)); };`),
    { instanceOf: FerryError },
  );
  t.is(error!.code, 'SCRIPT_THREW');
  t.regex(error!.message, /^channels\/script\.ts:1:\d+: /);
});

test('scripts run in strict mode and the message is read-only', async (t) => {
  const channels = await channelsFolder(t, {
    'mutate.ts': `export default (msg: Message) => { try { (msg as any).text = 'changed'; } catch (e) { return 'frozen: ' + (e as Error).name; } return 'not frozen'; };`,
  });
  const translator = await translatorFor(t, channels.file('mutate.ts'));
  const input = { id: '1', text: ADT };
  t.deepEqual((await translator.run(input)).outputs, ['frozen: TypeError']);
  t.deepEqual(input, { id: '1', text: ADT });
});

test('a string too long for V8 is an ordinary script error, not a crash', async (t) => {
  const error = await t.throwsAsync(runScript(t, `export default () => { let s = 'x'; for (;;) s += s; };`), { instanceOf: FerryError });
  t.true(['SCRIPT_THREW', 'SCRIPT_MEMORY'].includes(error!.code), error!.code);
});

test('a closed translator refuses new messages', async (t) => {
  const channels = await channelsFolder(t, { 'ok.ts': `export default () => 'ok';` });
  const translator = await translatorFor(t, channels.file('ok.ts'));
  t.deepEqual((await translator.run({ id: '1', text: ADT })).outputs, ['ok']);
  await translator.close();
  await translator.close();
  const error = await t.throwsAsync(translator.run({ id: '2', text: ADT }), { instanceOf: FerryError });
  t.is(error!.code, 'ENGINE_SHUTTING_DOWN');
});
