import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCerts } from '../https/helpers.ts';
import { runFerry, startEngineProcess } from '../helpers/engine-process.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// `ferry start` with an MLLP source over TLS that requires client certificates, and `ferry send`
// as the sender: with the CA and a client certificate it gets an AA and the message log names the
// sender's certificate; without one it gets no ACK and nothing is stored.

test('MLLP over TLS end to end: ferry send with a client certificate gets AA; without, no ACK and nothing stored', async (t) => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: secure-adt
    source:
      type: mllp
      host: 127.0.0.1
      port: ${port}
      tls: { cert: certs/server.crt, key: certs/server.key, ca: certs/ca.crt, clientCert: require }
    destinations:
      - { name: archive, type: file, dir: ./out }
`,
    }),
  );
  const certs = await makeCerts(join(dir, 'certs'), ['site-a']);
  await writeFile(join(dir, 'adt.hl7'), 'MSH|^~\\&|REG|HOSP|EHR|HOSP|20260101120000||ADT^A01|TLS0001|P|2.5\nPID|1||MRN77^^^HOSP^MR||DOE^JANE\n');
  const engine = await startEngineProcess(t, configFile, dir);
  t.regex(engine.output(), new RegExp(`channel secure-adt listening on MLLP over TLS port ${port}`));

  const client = certs.clients['site-a']!;
  const sent = await runFerry(['send', `127.0.0.1:${port}`, 'adt.hl7', '--ca', certs.ca, '--cert', client.cert, '--key', client.key], { cwd: dir });
  t.is(sent.code, 0, sent.stderr);
  t.is(sent.stdout, 'adt.hl7: AA for TLS0001\n');

  const refused = await runFerry(['send', `127.0.0.1:${port}`, 'adt.hl7', '--ca', certs.ca], { cwd: dir });
  t.is(refused.code, 1);
  // Refused in the handshake, not let in and left without an answer.
  t.regex(refused.stdout, /^adt\.hl7: no ACK: (?!MLLP_ACK_TIMEOUT)/);

  const { body } = await engine.api<{ items: Array<{ id: string; source: string }> }>('/api/messages?channel=secure-adt');
  t.is(body.items.length, 1, 'only the message from the certified sender is stored');
  t.regex(body.items[0]!.source, /^mllp 127\.0\.0\.1:\d+ CN=site-a$/);
  await eventually(async () => ((await engine.api<{ status: string }>(`/api/messages/${body.items[0]!.id}`)).body.status === 'sent' ? true : undefined));
  const channels = await engine.api<Array<{ name: string; source: string }>>('/api/channels');
  t.is(channels.body[0]!.source, `mllp+tls 127.0.0.1:${port}`);
  t.is(await engine.stop(), 0);
});
