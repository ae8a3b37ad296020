import test from 'ava';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { signRequest } from '../../engine/auth/hmac.ts';
import type { MllpClient } from '../../engine/clients/mllp.ts';
import { runFerry, startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { fileTeardown } from '../helpers/file-teardown.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml } from '../helpers/project.ts';
import { eventually, freePort, tempDir } from '../helpers/temp.ts';
import { send, type SendOptions, type TestCerts } from '../https/helpers.ts';

// Two engines on one machine, as two sites run them: A takes HL7 over MLLP and posts each message
// over HTTPS to B; B takes HTTPS with a token (and a client certificate: clientCert require) and
// writes files. Both are real `ferry start` processes with their own Redis and message log.

interface MessageSummary {
  id: string;
  status: string;
  controlId: string | null;
  error: string | null;
}

interface Stage {
  stage: string;
  status: string;
  attempts: number;
  error: string | null;
  content: string | null;
}

const hl7 = (controlId: string): string =>
  [`MSH|^~\\&|REGSYS|HOSP|CENTRAL|HQ|20260101120000||ADT^A01^ADT_A01|${controlId}|P|2.5`, `PID|1||MRN-${controlId}^^^HOSP^MR||DOE^JOHN||19800101|M`].join('\r') + '\r';

const collector = fileTeardown();

let dir: string;
let certs: TestCerts;
let a: EngineProcess;
let b: EngineProcess;
let bConfig: string;
let bUrl: string;
let mllp: { site: MllpClient; bad: MllpClient; signed: MllpClient };
let tokens: { adt: string; lab: string; hmac: string };

/** Messages of one channel in B (or A), oldest first. */
const messages = async (engine: EngineProcess, channel: string): Promise<MessageSummary[]> => {
  const { body } = await engine.api<{ items: MessageSummary[] }>(`/api/messages?channel=${channel}&limit=500`);
  return body.items.reverse();
};

const sendHl7 = async (client: MllpClient, controlId: string): Promise<void> => {
  const ack = await sendForAck(client, hl7(controlId));
  if (ack.code !== 'AA') throw new Error(`${controlId}: ${ack.code}`);
};

const siteA = () => certs.pem.clients['site-a']!;
/** A direct request to B with the site-a client certificate. */
const toB = (path: string, options: SendOptions = {}) => send(`${bUrl}${path}`, { ca: certs.pem.ca, cert: siteA().cert, key: siteA().key, ...options });

test.before(async () => {
  dir = await tempDir(collector, 'ferry-two-engines-');
  const [bPort, sitePort, badPort, signedPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  bUrl = `https://127.0.0.1:${bPort}`;

  const init = await runFerry(['certs', 'init'], { cwd: dir });
  if (init.code !== 0) throw new Error(init.stderr);
  const issued = await runFerry(['certs', 'issue', 'site-a'], { cwd: dir });
  if (issued.code !== 0) throw new Error(issued.stderr);
  certs = {
    dir: join(dir, 'certs'),
    ca: join(dir, 'certs/ca.crt'),
    serverCert: join(dir, 'certs/server.crt'),
    serverKey: join(dir, 'certs/server.key'),
    clients: { 'site-a': { cert: join(dir, 'certs/clients/site-a.crt'), key: join(dir, 'certs/clients/site-a.key') } },
    pem: {
      ca: await readFile(join(dir, 'certs/ca.crt')),
      clients: { 'site-a': { cert: await readFile(join(dir, 'certs/clients/site-a.crt')), key: await readFile(join(dir, 'certs/clients/site-a.key')) } },
    },
  };

  bConfig = join(dir, 'b.yaml');
  await writeFile(
    bConfig,
    channelsYaml({
      data: './data-b',
      engine: `tokens: ./tokens.yaml
https: { host: 127.0.0.1, port: ${bPort}, cert: certs/server.crt, key: certs/server.key, ca: certs/ca.crt, clientCert: require }`,
      channels: `  - name: adt-in
    source: { type: https, path: /in/adt, auth: token }
    destinations: [{ name: files, type: file, dir: ./out/b/adt, filename: "{controlId}.hl7" }]
  - name: lab-in
    source: { type: https, path: /in/lab, auth: token }
    destinations: [{ name: files, type: file, dir: ./out/b/lab }]
  - name: json-in
    source: { type: https, path: /in/json, auth: token }
    destinations: [{ name: files, type: file, dir: ./out/b/json }]
  - name: signed-in
    source: { type: https, path: /in/signed, auth: hmac }
    destinations: [{ name: files, type: file, dir: ./out/b/signed, filename: "{controlId}.hl7" }]
  - name: small
    source: { type: https, path: /in/small, auth: none, maxBody: 1KB }
    destinations: [{ name: files, type: file, dir: ./out/b/small }]
`,
    }),
  );
  const token = async (args: string[]): Promise<string> => {
    const run = await runFerry(['token', ...args, '-c', 'b.yaml'], { cwd: dir });
    if (run.code !== 0) throw new Error(run.stderr);
    return run.stdout.trim();
  };
  tokens = {
    adt: await token(['add', 'site-a', '--channel', 'adt-in,json-in']),
    lab: await token(['add', 'lab-app', '--channel', 'lab-in']),
    hmac: await token(['add-hmac', 'site-a-signer', '--channel', 'signed-in']),
  };

  const central = (path: string, extra = '') =>
    `{ name: central, type: https, url: "${bUrl}${path}", ca: certs/ca.crt, cert: certs/clients/site-a.crt, key: certs/clients/site-a.key, ${extra} }`;
  await writeFile(
    join(dir, 'a.yaml'),
    channelsYaml({
      data: './data-a',
      channels: `  - name: site
    source: { type: mllp, port: ${sitePort} }
    destinations:
      - ${central('/in/adt', `token: "${tokens.adt}", retry: { attempts: 0, delay: 200ms, maxDelay: 1s }, circuitBreaker: { failures: 3, cooldown: 1s }`)}
  - name: bad
    source: { type: mllp, port: ${badPort} }
    destinations:
      - ${central('/in/json', `token: "${tokens.adt}", headers: { Content-Type: application/json }, retry: { attempts: 5, delay: 200ms }`)}
  - name: signed
    source: { type: mllp, port: ${signedPort} }
    destinations:
      - ${central('/in/signed', `hmac: { keyId: site-a-signer, secret: "${tokens.hmac}" }, retry: { attempts: 0, delay: 200ms, maxDelay: 1s }`)}
`,
    }),
  );

  b = await startEngineProcess(collector, bConfig, dir);
  a = await startEngineProcess(collector, join(dir, 'a.yaml'), dir);
  mllp = { site: openMllpClient(collector, sitePort), bad: openMllpClient(collector, badPort), signed: openMllpClient(collector, signedPort) };
});

test.serial('every message arrives once, in order, under the same id in both logs', async (t) => {
  const sent = Array.from({ length: 20 }, (_, i) => `ORD${String(i + 1).padStart(3, '0')}`);
  for (const controlId of sent) await sendHl7(mllp.site, controlId);

  const files = await eventually(async () => {
    // Dot-files are the file destination's temp files, renamed into place once written.
    const names = (await readdir(join(dir, 'out/b/adt')).catch(() => [])).filter((name) => !name.startsWith('.'));
    return names.length >= sent.length ? names : undefined;
  }, 30_000, 'every message in out/b/adt');
  t.deepEqual(files.sort(), sent.map((c) => `${c}.hl7`));
  t.is(await readFile(join(dir, 'out/b/adt/ORD007.hl7'), 'latin1'), hl7('ORD007'));

  const atB = await messages(b, 'adt-in');
  t.deepEqual(atB.map((m) => m.controlId), sent, 'B received them once each, in order');
  const atA = await eventually(async () => {
    const list = await messages(a, 'site');
    return list.length === sent.length && list.every((m) => m.status === 'sent') ? list : undefined;
  });
  t.deepEqual(atA.map((m) => m.id), atB.map((m) => m.id), 'A and B log each message under one id');

  const { body: detail } = await a.api<{ stages: Stage[] }>(`/api/messages/${atA[0]!.id}`);
  t.regex(detail.stages.find((s) => s.stage === 'central#0')!.content ?? '', new RegExp(`^HTTP 200 \\{"Success":true,"id":"${atA[0]!.id}"\\}`));

  // A resend of a delivered message (say its 200 was lost on the way back) is acknowledged, not processed again.
  const resend = await toB('/in/adt', { body: hl7('ORD001'), headers: { Authorization: `Bearer ${tokens.adt}`, 'X-Ferry-Message-Id': atA[0]!.id } });
  t.deepEqual(resend.json, { Success: true, id: atA[0]!.id, duplicate: true });
  t.is((await messages(b, 'adt-in')).length, sent.length);
  t.deepEqual((await readdir(join(dir, 'out/b/adt'))).filter((name) => !name.startsWith('.')).length, sent.length);
});

test.serial('a wrong or revoked token gets 401 and nothing is stored; another channel’s token gets 403', async (t) => {
  const before = (await messages(b, 'adt-in')).length;
  let accepted = 0;
  const post = async (token: string) => {
    const reply = await toB('/in/adt', { body: hl7('NOPE'), headers: { Authorization: `Bearer ${token}` } });
    if (reply.status === 200) accepted++;
    return reply;
  };

  const wrong = await post('fy_this-is-not-a-token');
  t.is(wrong.status, 401);
  t.deepEqual(wrong.json, { Success: false, error: 'unknown or revoked token', code: 'HTTP_UNAUTHORIZED' });
  t.is((await toB('/in/adt', { body: hl7('NOPE') })).status, 401);

  const other = await post(tokens.lab);
  t.is(other.status, 403);
  t.is(other.json?.['code'], 'HTTP_FORBIDDEN');

  const add = await runFerry(['token', 'add', 'temporary', '--channel', 'adt-in', '-c', 'b.yaml'], { cwd: dir });
  const temporary = add.stdout.trim();
  // A new token works as soon as the running engine has seen the file change: no restart.
  await eventually(async () => ((await post(temporary)).status === 200 ? true : undefined), 10_000, 'the new token to be accepted');
  const revoke = await runFerry(['token', 'revoke', 'temporary', '-c', 'b.yaml'], { cwd: dir });
  t.is(revoke.code, 0);
  const revoked = await eventually(async () => {
    const reply = await post(temporary);
    return reply.status === 401 ? reply : undefined;
  }, 10_000, 'the revocation to reach the running engine');
  t.is(revoked.json?.['error'], 'unknown or revoked token');

  const after = await messages(b, 'adt-in');
  t.true(accepted >= 1);
  t.is(after.length, before + accepted, 'only requests answered 200 were stored');
  t.regex(b.output(), /"code":"HTTP_UNAUTHORIZED".*HTTPS request refused: unknown or revoked token/);
});

test.serial('clientCert: require refuses a client without a certificate', async (t) => {
  const reply = await send(`${bUrl}/in/adt`, { ca: certs.pem.ca, body: hl7('NOCERT'), headers: { Authorization: `Bearer ${tokens.adt}` } });
  t.is(reply.status, 401);
  t.regex(String(reply.json?.['error']), /client certificate is required/);
  t.false((await messages(b, 'adt-in')).some((m) => m.controlId === 'NOCERT'));
});

test.serial('an oversized body gets 413 and is not stored', async (t) => {
  const reply = await toB('/in/small', { body: 'x'.repeat(4096) });
  t.is(reply.status, 413);
  t.is(reply.json?.['code'], 'HTTP_BODY_TOO_LARGE');
  t.is((await toB('/in/small', { body: 'small enough' })).status, 200);
  t.is((await messages(b, 'small')).length, 1);
});

test.serial('signed requests: A signs, B accepts; a replayed signed request is rejected', async (t) => {
  await sendHl7(mllp.signed, 'SIG001');
  await eventually(() => readFile(join(dir, 'out/b/signed/SIG001.hl7'), 'latin1').catch(() => undefined), 20_000, 'the signed delivery');

  const body = Buffer.from(hl7('SIG002'));
  const headers = signRequest({ keyId: 'site-a-signer', secret: tokens.hmac, method: 'POST', path: '/in/signed', body });
  t.is((await toB('/in/signed', { body, headers })).status, 200);
  const replay = await toB('/in/signed', { body, headers });
  t.is(replay.status, 401);
  t.regex(String(replay.json?.['error']), /replayed/);
  t.deepEqual((await messages(b, 'signed-in')).map((m) => m.controlId), ['SIG001', 'SIG002']);
});

test.serial('a 400 from the far end is not retried and shows as error in the log, with an alert', async (t) => {
  // HL7 declared as JSON: B answers 400, which no retry can fix.
  await sendHl7(mllp.bad, 'BAD001');
  const errored = await eventually(async () => (await messages(a, 'bad')).find((m) => m.status === 'error'), 20_000, 'the error');
  t.regex(errored.error ?? '', /HTTP_REJECTED: .*answered 400: .*Content-Type is JSON but the body is not/);
  const { body: detail } = await a.api<{ stages: Stage[] }>(`/api/messages/${errored.id}`);
  t.like(detail.stages.find((s) => s.stage === 'central#0'), { status: 'error', attempts: 1 });
  t.regex(a.output(), new RegExp(`"alert":true.*"id":"${errored.id}"`));
  t.is((await messages(b, 'json-in')).length, 0);
});

test.serial('503 then 200: a stopped channel at B is retried and the message delivered once', async (t) => {
  const stop = await fetch(`${b.adminUrl}/api/channels/adt-in/stop`, { method: 'POST' });
  t.is(stop.status, 200);
  const before = (await messages(b, 'adt-in')).length;
  await sendHl7(mllp.site, 'RETRY01');
  const waiting = await eventually(async () => {
    const message = (await messages(a, 'site')).find((m) => m.controlId === 'RETRY01');
    if (!message) return undefined;
    const { body } = await a.api<{ stages: Stage[] }>(`/api/messages/${message.id}`);
    const stage = body.stages.find((s) => s.stage === 'central#0');
    return stage && stage.attempts >= 2 ? stage : undefined;
  }, 20_000, 'A to retry after 503s');
  t.is(waiting.status, 'queued');
  t.regex(waiting.error ?? '', /answered 503/);

  t.is((await fetch(`${b.adminUrl}/api/channels/adt-in/start`, { method: 'POST' })).status, 200);
  await eventually(() => readFile(join(dir, 'out/b/adt/RETRY01.hl7')).catch(() => undefined), 20_000, 'the delivery after the restart of the channel');
  const after = await messages(b, 'adt-in');
  t.is(after.length, before + 1);
  t.is(after.filter((m) => m.controlId === 'RETRY01').length, 1);
});

test.serial('B stopped for a while: A acknowledges and queues, then delivers everything in order once B is back', async (t) => {
  t.is(await b.stop(), 0);
  const sent = Array.from({ length: 10 }, (_, i) => `DOWN${String(i + 1).padStart(2, '0')}`);
  for (const controlId of sent) await sendHl7(mllp.site, controlId);
  // Long enough for several failed tries and the circuit breaker to open.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const queued = (await messages(a, 'site')).filter((m) => m.controlId?.startsWith('DOWN'));
  t.is(queued.length, sent.length);
  t.true(queued.every((m) => m.status === 'queued'), 'nothing was lost or given up while B was down');

  b = await startEngineProcess(collector, bConfig, dir);
  const delivered = await eventually(async () => {
    const list = (await messages(b, 'adt-in')).filter((m) => m.controlId?.startsWith('DOWN'));
    return list.length >= sent.length ? list : undefined;
  }, 60_000, 'the backlog at B');
  t.deepEqual(delivered.map((m) => m.controlId), sent, 'once each, in order');
  t.regex(a.output(), /circuit breaker open/);
  await eventually(async () => ((await messages(a, 'site')).every((m) => m.status === 'sent') ? true : undefined));
});
