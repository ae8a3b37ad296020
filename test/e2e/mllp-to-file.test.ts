import test from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startEngineProcess } from '../helpers/engine-process.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// The engine as a user runs it: `ferry start` on a config in a folder, messages over MLLP,
// ACKs checked, files checked byte for byte, the message log read through the admin API.

const hl7 = (controlId: string, mrn: string, name = 'DOE^JOHN^A', type = 'ADT^A01^ADT_A01'): string =>
  adtMessage({ controlId, mrn, name, type, visit: true });

const SCRIPT = `
export default function (msg: Message, ctx: Context) {
  if (msg.get('MSH-9.1') !== 'ADT') return null;
  msg.set('PID-5.1', msg.get('PID-5.1').toUpperCase());
  ctx.log('mrn', msg.get('PID-3.1'));
  return msg;
}
`;

const config = (port: number): string =>
  channelsYaml({
    channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: archive, type: file, dir: ./out/adt, filename: "{controlId}.hl7" }
      - { name: to-lab, type: channel, channel: lab }
  - name: lab
    source: { type: channel }
    destinations:
      - { name: lab-files, type: file, dir: ./out/lab }
`,
  });

test('MLLP in, script, file and channel out; ACKs, files and the message log', async (t) => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(t, config(port), { 'channels/adt.ts': SCRIPT });
  const engine = await startEngineProcess(t, configFile, dir);
  const client = openMllpClient(t, port);

  const ack = await sendForAck(client, hl7('MSG00001', 'MRN12345', 'doe^john^a'));
  t.is(ack.code, 'AA');
  t.is(ack.controlId, 'MSG00001');

  // The script upper-cases PID-5.1 and leaves every other byte as received.
  const archived = await eventually(() => readFile(join(dir, 'out/adt/MSG00001.hl7'), 'latin1').catch(() => undefined));
  t.is(archived, hl7('MSG00001', 'MRN12345', 'DOE^john^a'));

  // The hand-off: the lab channel has no script, so it writes exactly what it was handed.
  const labFiles = await eventually(async () => {
    // Dot-files are the file destination's temp files, renamed into place once written.
    const files = (await readdir(join(dir, 'out/lab')).catch(() => [])).filter((name) => !name.startsWith('.'));
    return files.length > 0 ? files : undefined;
  });
  t.is(labFiles.length, 1);
  t.is(await readFile(join(dir, 'out/lab', labFiles[0]), 'latin1'), archived);

  // A filtered message (not ADT) is acknowledged and written nowhere.
  const oru = await sendForAck(client, hl7('MSG00002', 'MRN777', 'ROE^ANN', 'ORU^R01^ORU_R01'));
  t.is(oru.code, 'AA');

  // Not HL7 at all: AR, nothing processed.
  const rejected = await sendForAck(client, 'hello, not hl7');
  t.is(rejected.code, 'AR');

  // The message log, through the admin API.
  const found = await eventually(async () => {
    const { body } = await engine.api<{ items: Array<{ id: string; status: string; channel: string }> }>('/api/messages?q=MRN12345&channel=adt');
    return body.items.length === 1 && body.items[0].status === 'sent' ? body.items[0] : undefined;
  });
  const { status, body: detail } = await engine.api<{
    text: string;
    outputs: string[];
    stages: Array<{ stage: string; status: string; content: string | null }>;
  }>(`/api/messages/${found.id}`);
  t.is(status, 200);
  t.is(detail.text, hl7('MSG00001', 'MRN12345', 'doe^john^a'));
  t.deepEqual(detail.outputs, [archived]);
  t.deepEqual(
    detail.stages.map((s) => `${s.stage}:${s.status}`).sort(),
    ['archive#0:sent', 'to-lab#0:sent', 'transform:transformed'],
  );
  t.regex(detail.stages.find((s) => s.stage === 'transform')!.content ?? '', /mrn MRN12345/);

  await eventually(async () => {
    const { body } = await engine.api<{ items: Array<{ status: string }> }>('/api/messages?channel=adt&status=filtered');
    return body.items.length === 1 ? true : undefined;
  });
  const { body: channels } = await engine.api<Array<{ name: string; state: string; counts: Record<string, number> }>>('/api/channels');
  const adt = channels.find((c) => c.name === 'adt')!;
  t.is(adt.state, 'running');
  t.deepEqual(
    { received: adt.counts.received, sent: adt.counts.sent, filtered: adt.counts.filtered, errored: adt.counts.errored },
    { received: 3, sent: 1, filtered: 1, errored: 1 },
  );

  t.is(await engine.stop(), 0);
});

// kill -9 of the engine and of its Redis under load, SIGTERM mid-burst: test/faults/.
