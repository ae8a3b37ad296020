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
  ['a URL that is not http(s)', `ctx.deliver('x', { url: 'ftp://x' })`, /url must be an http\(s\):\/\/ URL \(got "ftp:\/\/x"\)$/],
  ['a URL past 8192 characters', `ctx.deliver('x', { url: 'https://x/' + 'a'.repeat(8192) })`, /url is 8202 characters long, more than 8192$/],
  ['an unknown method', `ctx.deliver('x', { url: 'https://x/', method: 'GET' })`, /method must be one of POST, PUT, PATCH, DELETE \(got "GET"\)$/],
  ['a header Ferry sets', `ctx.deliver('x', { headers: { 'X-Ferry-Message-Id': 'forged' } })`, /header X-Ferry-Message-Id is set by Ferry$/],
  ['Host, in any case', `ctx.deliver('x', { headers: { hOsT: 'evil.example' } })`, /header hOsT is set by Ferry$/],
  ['Transfer-Encoding', `ctx.deliver('x', { headers: { 'Transfer-Encoding': 'chunked' } })`, /header Transfer-Encoding is set by Ferry$/],
  ['a hop-by-hop header', `ctx.deliver('x', { headers: { Upgrade: 'websocket' } })`, /header Upgrade is set by Ferry$/],
  ['a header with a line break', `ctx.deliver('x', { headers: { 'X-A': 'a\\r\\nInjected: 1' } })`, /header X-A must be a string without line breaks/],
  ['a header with a NUL', `ctx.deliver('x', { headers: { 'X-A': 'a\\u0000b' } })`, /header X-A must be a string without line breaks/],
  ['a header beyond Latin-1', `ctx.deliver('x', { headers: { 'X-A': '5 \\u20ac' } })`, /header X-A must be a string without line breaks or other control characters \(tab, printable ASCII and Latin-1\)$/],
  ['a header that is not a string', `ctx.deliver('x', { headers: { 'X-A': 5 as never } })`, /header X-A must be a string/],
  ['headers past 8192 characters', `ctx.deliver('x', { headers: { 'X-A': 'a'.repeat(5000), 'X-B': 'b'.repeat(5000) } })`, /headers are more than 8192 characters in all$/],
  ['a bad header name', `ctx.deliver('x', { headers: { 'a b': 'c' } })`, /header name "a b" is not valid$/],
  ['a bad connection id', `ctx.deliver('x', { connectionId: 'a/b' })`, /connectionId must be a WebSocket connection id \(got "a\/b"\)$/],
  ['an unknown option', `ctx.deliver('x', { uri: 'https://x/' } as never)`, /unknown key "uri"/],
  ['no body', `ctx.deliver(null)`, /ctx.deliver needs a body$/],
];

// Refused where the script calls ctx.deliver: SCRIPT_BAD_RESULT, naming that line and column.
for (const [what, call, message] of refused) {
  test(`ctx.deliver refuses ${what}: the message errors at the call`, async (t) => {
    const code = `export default (msg: Message, ctx: Context) => { ${call}; }`;
    const error = await t.throwsAsync<FerryError>(runScript(t, code));
    t.is(error!.code, 'SCRIPT_BAD_RESULT');
    t.true(error!.message.startsWith(`channels/script.ts:1:${code.indexOf('deliver(') + 1}: ctx.deliver `), error!.message);
    t.regex(error!.message, message);
  });
}

test('a script that catches the refusal carries on; the refused output is not sent', async (t) => {
  const result = await runScript(
    t,
    `export default (msg: Message, ctx: Context) => {
      try { ctx.deliver('smuggled', { headers: { Host: 'evil.example' } }); } catch (error) { ctx.log(String(error)); }
      ctx.deliver('fine', { headers: { 'X-A': '1' } });
    }`,
  );
  t.deepEqual(result.outputs, ['fine']);
  t.deepEqual(result.meta, [{ headers: { 'X-A': '1' } }]);
  t.deepEqual(result.logs, [{ level: 'info', message: 'Error: ctx.deliver header Host is set by Ferry' }]);
});
