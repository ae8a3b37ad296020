import test from 'ava';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { loadMessage } from '../helpers/load.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, writeProject } from '../helpers/project.ts';
import { eventually, freePort, tempDir } from '../helpers/temp.ts';
import { TAMPER } from '../sandbox/fixture.ts';
import { farEnd, makeCerts, reply } from './helpers.ts';

// Issue 9, finding 6, end to end: a script on a channel with an https destination tries to put Host,
// Transfer-Encoding and Content-Length on its request, first with Array.prototype.includes replaced
// (the prelude's reserved-header check used it), then with every builtin the prelude relied on
// replaced. The far end is lenient (it records what a strict server refuses), so it shows every
// header that went out. Those messages end in `error` with SCRIPT_BAD_RESULT naming the header and
// send nothing; the messages around them, after the tampering too, go out exactly as before.

interface Summary {
  id: string;
  status: string;
  controlId: string;
  error: string | null;
}

const FORBIDDEN = ['transfer-encoding', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'upgrade'];

const script = (api: string): string => `${TAMPER}
const API = ${JSON.stringify(api)};

export default (msg: Message, ctx: Context) => {
  const text = msg.text;
  if (text.includes('ZHX|INCLUDES')) Array.prototype.includes = () => false;
  if (text.includes('ZHX|TAMPER')) tamper();
  if (text.includes('ZHX|INCLUDES') || text.includes('ZHX|TAMPER') || text.includes('ZHX|HOST')) {
    ctx.deliver('smuggled', { url: API, headers: { Host: 'evil.example', 'Transfer-Encoding': 'chunked', 'Content-Length': '5' } });
    return null;
  }
  ctx.deliver('order ' + ctx.id, { url: API, method: 'put', headers: { 'X-Trace': 'a1', 'Content-Type': 'text/plain' } });
  return null;
};
`;

const settled = (engine: EngineProcess, controlId: string): Promise<Summary> =>
  eventually(
    async () => {
      const { body } = await engine.api<{ items: Summary[] }>('/api/messages?channel=orders&limit=100');
      const found = body.items.find((item) => item.controlId === controlId);
      return found && ['sent', 'filtered', 'error'].includes(found.status) ? found : undefined;
    },
    60_000,
    `message ${controlId} to finish`,
  );

test('a script tampering with builtins cannot put a forbidden header on an HTTPS request, then or later', async (t) => {
  const dir = await tempDir(t);
  const certs = await makeCerts(t);
  const api = await farEnd(t, certs, [reply(204)], { insecureHTTPParser: true });
  const port = await freePort();
  const configFile = await writeProject(
    dir,
    channelsYaml({
      channels: `  - name: orders
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    script: channels/orders.ts
    destinations:
      - name: api
        type: https
        url: ${api.url}/default
        ca: ${certs.ca}
        allowDynamicUrl: [${api.url}/api/]
        retry: { attempts: 1 }
`,
    }),
    { 'channels/orders.ts': script(`${api.url}/api/orders`) },
  );
  const engine = await startEngineProcess(t, configFile, dir);
  const client = openMllpClient(t, port);

  // One at a time, in this order: each later message runs in the context the earlier ones left.
  const order = ['BEFORE', 'INCLUDES', 'AFTER1', 'TAMPER', 'AFTER2', 'HOST', 'AFTER3'];
  const summaries = new Map<string, Summary>();
  for (const what of order) {
    t.is((await sendForAck(client, `${loadMessage(what)}ZHX|${what}\r`)).code, 'AA');
    summaries.set(what, await settled(engine, what));
  }

  for (const what of ['INCLUDES', 'TAMPER', 'HOST']) {
    const { status, error } = summaries.get(what)!;
    t.is(status, 'error', what);
    t.regex(error ?? '', /^SCRIPT_BAD_RESULT: channels\/orders\.ts:\d+:\d+: ctx\.deliver header Host is set by Ferry$/, what);
  }
  const sent = ['BEFORE', 'AFTER1', 'AFTER2', 'AFTER3'];
  for (const what of sent) t.is(summaries.get(what)!.status, 'sent', what);

  // The far end saw the four good requests and nothing else, each exactly as before the tampering.
  t.is(api.received.length, sent.length);
  api.received.forEach((request, i) => {
    const id = summaries.get(sent[i]!)!.id;
    const body = `order ${id}`;
    t.is(request.method, 'PUT');
    t.is(request.url, '/api/orders');
    t.is(request.body.toString(), body);
    t.is(request.headers['host'], new URL(api.url).host);
    t.is(request.headers['content-length'], String(Buffer.byteLength(body)));
    t.is(request.headers['x-ferry-message-id'], id);
    t.is(request.headers['x-trace'], 'a1');
    t.is(request.headers['content-type'], 'text/plain');
    for (const name of FORBIDDEN) t.false(name in request.headers, `${sent[i]} has ${name}`);
    t.false(JSON.stringify(request.headers).includes('evil.example'));
  });
});
