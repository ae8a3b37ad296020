import test from 'ava';
import { destinationConnectors } from '../../engine/connectors.ts';
import { createTranslator } from '../../engine/sandbox/translator.ts';
import { FerryError } from '../../engine/errors.ts';
import { checkResult, type ResultRules } from '../../engine/sandbox/check-result.ts';
import { captureLogger } from '../helpers/logger.ts';
import { channelsFolder, LIMITS } from './fixture.ts';

// The engine's own check of what a sandbox answers (issue 9, finding 6): the prelude shares a context
// with the script, so whatever comes back is checked again before it is recorded. Here the results
// are forged, as a prelude a script had subverted could answer.

const RULES: ResultRules = { script: 'channels/x.ts', outputBytes: 1024, maxOutputs: 3 };

const refused: Array<[string, unknown, string, Partial<ResultRules>?]> = [
  ['no result at all', undefined, 'the sandbox returned no result'],
  ['a Host header', { outputs: ['a'], meta: [{ headers: { Host: 'evil.example' } }], logs: [] }, 'output 0: ctx.deliver header Host is set by Ferry'],
  [
    'Transfer-Encoding next to Content-Length, in lower case',
    { outputs: ['a', 'b'], meta: [null, { headers: { 'transfer-encoding': 'chunked', 'content-length': '1' } }], logs: [] },
    'output 1: ctx.deliver header transfer-encoding is set by Ferry',
  ],
  ['X-Ferry-Message-Id', { outputs: ['a'], meta: [{ headers: { 'X-Ferry-Message-Id': 'forged' } }], logs: [] }, 'output 0: ctx.deliver header X-Ferry-Message-Id is set by Ferry'],
  [
    'a header value that starts another header',
    { outputs: ['a'], meta: [{ headers: { 'X-A': '1\r\nHost: evil.example' } }], logs: [] },
    'output 0: ctx.deliver header X-A must be a string without line breaks or other control characters (tab, printable ASCII and Latin-1)',
  ],
  ['a header name that is not a token', { outputs: ['a'], meta: [{ headers: { 'X A': '1' } }], logs: [] }, 'output 0: ctx.deliver header name "X A" is not valid'],
  ['a header that is not a string', { outputs: ['a'], meta: [{ headers: { 'X-A': 1 } }], logs: [] }, 'output 0: ctx.deliver header X-A must be a string without line breaks or other control characters (tab, printable ASCII and Latin-1)'],
  ['a URL that is not http(s)', { outputs: ['a'], meta: [{ url: 'file:///etc/passwd' }], logs: [] }, 'output 0: ctx.deliver url must be an http(s):// URL (got "file:///etc/passwd")'],
  ['a method not allowed', { outputs: ['a'], meta: [{ method: 'CONNECT' }], logs: [] }, 'output 0: ctx.deliver method must be one of POST, PUT, PATCH, DELETE (got "CONNECT")'],
  ['an unknown meta key', { outputs: ['a'], meta: [{ topic: 'x' }], logs: [] }, 'output 0: ctx.deliver options: unknown key "topic" (use url, method, headers, connectionId)'],
  ['meta that is not an object', { outputs: ['a'], meta: ['https://x/'], logs: [] }, 'output 0: ctx.deliver options must be an object such as { url: "https://…" }'],
  ['meta for more outputs than there are', { outputs: ['a'], meta: [null, { url: 'https://x/' }], logs: [] }, 'the ctx.deliver options could not be read back'],
  ['outputs that are not strings', { outputs: ['a', 5], logs: [] }, 'the result could not be turned into strings'],
  ['outputs past the byte limit (counted in UTF-8)', { outputs: ['é'.repeat(300), 'é'.repeat(300)], logs: [] }, 'the outputs total 1200 bytes, more than the 1024-byte limit per message'],
  ['log lines of an unknown level', { outputs: null, logs: [{ level: 'fatal', message: 'x' }] }, 'the log lines could not be read back'],
  ['more log lines than the prelude keeps', { outputs: null, logs: Array.from({ length: 1002 }, () => ({ level: 'info', message: 'x' })) }, 'the log lines could not be read back'],
  [
    'a url on a channel none of whose destinations follows one',
    { outputs: ['a'], meta: [{ url: 'https://x.example/' }], logs: [] },
    'output 0: ctx.deliver url is followed only by https destinations, and this channel has none (its destinations: archive (file), push (websocket))',
    { deliverTo: { destinations: [{ name: 'archive', type: 'file' }, { name: 'push', type: 'websocket' }], followers: destinationConnectors } },
  ],
  [
    'a connection id on a channel without a websocket destination',
    { outputs: ['a'], meta: [{ connectionId: 'c1' }], logs: [] },
    'output 0: ctx.deliver connectionId is followed only by websocket destinations, and this channel has none (its destinations: api (https))',
    { deliverTo: { destinations: [{ name: 'api', type: 'https' }], followers: destinationConnectors } },
  ],
];

for (const [what, result, problem, rules] of refused) {
  test(`refused: ${what}`, (t) => {
    const error = t.throws(() => checkResult(result, { ...RULES, ...rules }), { instanceOf: FerryError });
    t.is(error!.code, 'SCRIPT_BAD_RESULT');
    t.is(error!.message, `channels/x.ts: ${problem}`);
  });
}

test('more outputs than maxOutputs: SCRIPT_TOO_MANY_OUTPUTS, however the prelude answered', (t) => {
  const error = t.throws(() => checkResult({ outputs: ['a', 'b', 'c', 'd'], logs: [] }, RULES), { instanceOf: FerryError });
  t.is(error!.code, 'SCRIPT_TOO_MANY_OUTPUTS');
  t.is(
    error!.message,
    'channels/x.ts: more than 3 outputs for one message (returned and ctx.deliver together); nothing was queued. The limit is scriptLimits.maxOutputs in channels.yaml',
  );
  t.deepEqual(checkResult({ outputs: ['a', 'b', 'c'], logs: [] }, RULES).outputs, ['a', 'b', 'c']);
});

test('a good result comes back as fresh plain objects, the method in upper case', (t) => {
  const headers = Object.create(null) as Record<string, string>;
  headers['X-Trace'] = 'a1';
  const given = { outputs: ['a', 'b'], meta: [{ url: 'https://x.example/in', method: 'put', headers }, null], logs: [{ level: 'warn', message: 'hm' }] };
  const checked = checkResult(given, { ...RULES, deliverTo: { destinations: [{ name: 'api', type: 'https' }], followers: destinationConnectors } });
  t.deepEqual(checked, { outputs: ['a', 'b'], meta: [{ url: 'https://x.example/in', method: 'PUT', headers: { 'X-Trace': 'a1' } }, null], logs: [{ level: 'warn', message: 'hm' }] });
  t.is(Object.getPrototypeOf(checked.meta![0]!.headers), Object.prototype);
  t.not(checked.meta![0]!.headers, headers);
  t.deepEqual(checkResult({ outputs: null, logs: [] }, RULES), { outputs: null, logs: [] });
});

test('through a translator: a url on a channel with only a file destination is refused by the engine', async (t) => {
  const channels = await channelsFolder(t, {
    'x.ts': `export default (msg: Message, ctx: Context) => { ctx.deliver(msg.text, { url: 'https://api.example.org/' }); }`,
  });
  const translator = createTranslator({
    channel: 'x',
    scriptPath: channels.file('x.ts'),
    limits: LIMITS,
    logger: captureLogger().logger,
    destinations: [{ name: 'archive', type: 'file' }],
  });
  t.teardown(() => translator.close());
  const error = await t.throwsAsync<FerryError>(translator.run({ id: 'm1', text: 'hello' }));
  t.is(error!.code, 'SCRIPT_BAD_RESULT');
  t.is(error!.message, 'channels/x.ts: output 0: ctx.deliver url is followed only by https destinations, and this channel has none (its destinations: archive (file))');
});
