import test from 'ava';
import { FerryError } from '../../engine/errors.ts';
import { ADT, runScript } from '../sandbox/fixture.ts';

// ctx.deliver: a script choosing where (and how) an output is sent. Outputs from ctx.deliver come
// first, in call order, then whatever the script returns; `meta` runs parallel to `outputs`.

test('ctx.deliver with a URL: the output and its meta', async (t) => {
  const result = await runScript(
    t,
    `export default (msg: Message, ctx: Context) => {
      const request = JSON.parse(msg.text);
      ctx.deliver(request.body, { url: request.url, method: request.method, headers: { 'Content-Type': 'application/json' } });
    }`,
    JSON.stringify({ method: 'put', url: 'https://api.example.org/orders/5', body: { qty: 2 } }),
  );
  t.deepEqual(result.outputs, ['{"qty":2}']);
  t.deepEqual(result.meta, [{ url: 'https://api.example.org/orders/5', method: 'PUT', headers: { 'Content-Type': 'application/json' } }]);
});

test('ctx.deliver outputs come before the returned ones; meta is null where none was given', async (t) => {
  const result = await runScript(
    t,
    `export default (msg: Message, ctx: Context) => {
      ctx.deliver('first', { url: 'https://a.example.org/' });
      ctx.deliver(msg);
      msg.set('PID-5.1', 'CHANGED');
      return ['returned'];
    }`,
  );
  // The message was converted when delivered: the later edit does not show in that output.
  t.deepEqual(result.outputs, ['first', ADT, 'returned']);
  t.deepEqual(result.meta, [{ url: 'https://a.example.org/' }, null, null]);
});

test('without ctx.deliver options there is no meta at all', async (t) => {
  const plain = await runScript(t, `export default (msg: Message, ctx: Context) => { ctx.deliver('x'); return msg; }`);
  t.deepEqual(plain.outputs, ['x', ADT]);
  t.false('meta' in plain);
  const untouched = await runScript(t, `export default (msg: Message) => msg`);
  t.false('meta' in untouched);
});

test('ctx.deliver keeps a message from being filtered by a null return', async (t) => {
  const result = await runScript(t, `export default (msg: Message, ctx: Context) => { ctx.deliver('only'); return null; }`);
  t.deepEqual(result.outputs, ['only']);
});

const refused: Array<[string, string, RegExp]> = [
  ['a URL that is not http(s)', `ctx.deliver('x', { url: 'ftp://x' })`, /url must be an http\(s\):\/\/ URL/],
  ['an unknown method', `ctx.deliver('x', { url: 'https://x/', method: 'GET' })`, /method must be one of POST, PUT, PATCH, DELETE/],
  ['a header Ferry sets', `ctx.deliver('x', { headers: { 'X-Ferry-Message-Id': 'forged' } })`, /header X-Ferry-Message-Id is set by Ferry/],
  ['a header with a line break', `ctx.deliver('x', { headers: { 'X-A': 'a\\r\\nInjected: 1' } })`, /must be a string without line breaks/],
  ['a bad header name', `ctx.deliver('x', { headers: { 'a b': 'c' } })`, /header name "a b" is not valid/],
  ['an unknown option', `ctx.deliver('x', { uri: 'https://x/' } as never)`, /unknown key "uri"/],
  ['no body', `ctx.deliver(null)`, /ctx.deliver needs a body/],
];

for (const [what, call, message] of refused) {
  test(`ctx.deliver refuses ${what}: the message errors`, async (t) => {
    const error = await t.throwsAsync<FerryError>(runScript(t, `export default (msg: Message, ctx: Context) => { ${call}; }`));
    t.is(error!.code, 'SCRIPT_THREW');
    t.regex(error!.message, message);
  });
}
