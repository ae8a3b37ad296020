import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { allDelivered, checkDeliveries, DELIVERY_FILENAME, formatReport, startLoad, watchDeliveries, type DeliveryWatch } from '../helpers/load.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';
import { openMessageStore } from '../../engine/store/message-store.ts';

// Unbounded fan-out (issue 9, finding 1). A script `return msg.text.split('\n')` turned a 1 MB message
// into 1,000,001 outputs: the engine grew to 5 GB and died, other channels' ACKs stalled first, and
// every restart died the same way re-queueing them. Now a message may make at most
// scriptLimits.maxOutputs outputs (default 1000): past it, it errors with SCRIPT_TOO_MANY_OUTPUTS and
// nothing is queued. A message log that already holds a message with a huge number of outputs (an
// older Ferry wrote it) starts, and its deliveries are queued and delivered a page at a time.

const msh = (controlId: string): string => `MSH|^~\\&|ATTACK|HOSP|FERRY|LAB|20260101120000||ADT^A01|${controlId}|P|2.5\r`;

/** An MSH segment, then newlines up to `bytes` in all: `msg.text.split('\n')` makes one output per newline, plus one. */
const ofBytes = (controlId: string, bytes: number): string => msh(controlId) + '\n'.repeat(bytes - msh(controlId).length);

/** A message that `msg.text.split('\n')` splits into `outputs` outputs. */
const ofOutputs = (controlId: string, outputs: number): string => msh(controlId) + '\n'.repeat(outputs - 1);

const SPLIT = `export default (msg: Message) => msg.text.split('\\n');\n`;

/** Channel fanout (MLLP, the splitting script) and channel other (MLLP, plain), each to a fifo file destination. */
const project = async (t: ExecutionContext, fanoutExtra = '') => {
  const ports = { fanout: await freePort(), other: await freePort() };
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: fanout
    source: { type: mllp, host: 127.0.0.1, port: ${ports.fanout} }
${fanoutExtra}    destinations:
      - { name: out, type: file, dir: ./out/fanout, filename: "{controlId}-{index}.hl7" }
  - name: other
    source: { type: mllp, host: 127.0.0.1, port: ${ports.other} }
    destinations:
      - { name: out, type: file, dir: ./out/other, filename: "${DELIVERY_FILENAME}" }
`,
    }),
    { 'channels/fanout.ts': SPLIT },
  );
  return { dir, configFile, ports };
};

const watchAll = async (t: ExecutionContext, dir: string): Promise<Record<'fanout' | 'other', DeliveryWatch>> => {
  const [fanout, other] = await Promise.all([watchDeliveries(join(dir, 'out', 'fanout')), watchDeliveries(join(dir, 'out', 'other'))]);
  t.teardown(() => [fanout!, other!].forEach((w) => w.close()));
  return { fanout: fanout!, other: other! };
};

interface Summary {
  id: string;
  status: string;
  controlId: string;
  error: string | null;
}

const finished = (engine: EngineProcess, controlId: string): Promise<Summary> =>
  eventually(
    async () => {
      const { body } = await engine.api<{ items: Summary[] }>(`/api/messages?channel=fanout&limit=50`);
      const found = body.items.find((item) => item.controlId === controlId);
      return found && ['sent', 'filtered', 'error'].includes(found.status) ? found : undefined;
    },
    120_000,
    `message ${controlId} to finish`,
  );

test.serial('a 1 MB message split on newlines (999,933 outputs): SCRIPT_TOO_MANY_OUTPUTS, nothing queued; another channel keeps answering; a raised limit delivers in full', async (t) => {
  const { dir, configFile, ports } = await project(t, '    scriptLimits: { maxOutputs: 1500 }\n');
  const watches = await watchAll(t, dir);
  const engine = await startEngineProcess(t, configFile, dir);

  // The other channel's sender runs throughout: each message resent until AA, as an interface would.
  const load = startLoad({ port: ports.other, connections: 1, ackTimeoutMs: 30_000, intervalMs: 20 });
  t.teardown(() => load.stop());
  await eventually(() => (load.acked().length >= 5 ? true : undefined), 60_000, 'the other channel answering');

  // The attack: 1,000,000 bytes (under the 1 MB maxFrameSize), nearly all of them newlines.
  const fanout = openMllpClient(t, ports.fanout);
  t.is((await sendForAck(fanout, ofBytes('SPLIT1', 1_000_000))).code, 'AA');
  const acksBefore = load.acked().length;
  const attack = await finished(engine, 'SPLIT1');
  t.log(`${load.acked().length - acksBefore} ACKs of the other channel while the attack was processed`);
  t.is(attack.status, 'error');
  t.is(
    attack.error,
    'SCRIPT_TOO_MANY_OUTPUTS: channels/fanout.ts: more than 1500 outputs for one message (returned and ctx.deliver together); nothing was queued. The limit is scriptLimits.maxOutputs in channels.yaml',
  );
  t.regex(engine.output(), /"channel":"fanout"[^\n]*"msg":"script error: SCRIPT_TOO_MANY_OUTPUTS: /);

  // Within the limit: 1,500 outputs, queued a page of 1,000 at a time, all delivered in order.
  t.is((await sendForAck(fanout, ofOutputs('SPLIT2', 1500))).code, 'AA');
  t.is((await finished(engine, 'SPLIT2')).status, 'sent');
  const names = await eventually(() => (watches.fanout.names().length >= 1500 ? watches.fanout.names() : undefined), 30_000, 'the watcher to see 1,500 files');
  t.deepEqual(names, Array.from({ length: 1500 }, (_, i) => `SPLIT2-${i}.hl7`), 'nothing of SPLIT1; every output of SPLIT2, in order');

  // The other channel kept answering (and delivering) after the attack too, and lost nothing.
  await eventually(() => (load.acked().length >= acksBefore + 5 ? true : undefined), 60_000, 'the other channel answering after the attack');
  await load.stop();
  await eventually(() => (allDelivered(load, watches.other.names()) ? true : undefined), 60_000, 'every acknowledged message of the other channel delivered').catch(
    () => undefined, // reported below as lost
  );
  const report = checkDeliveries(load, watches.other.names());
  t.log(`other channel: ${formatReport(report)}`);
  t.deepEqual(report.lost, []);
  t.deepEqual(report.outOfOrder, []);

  // Still up, healthy, and it exits cleanly.
  t.is((await fetch(`${engine.adminUrl}/healthz`)).status, 200);
  t.is(await engine.stop(), 0);
});

test.serial('a message log holding a message with 200,000 queued deliveries (an older Ferry): the engine starts, answers another channel, and delivers them in order', async (t) => {
  const STAGES = 200_000;
  const { dir, configFile, ports } = await project(t);
  // What an older Ferry left: one message transformed into STAGES outputs, all still to deliver,
  // and a Redis (none here: the data folder has only the log) that holds none of their jobs.
  const store = openMessageStore(join(dir, 'data', 'messages.db'));
  const id = '01JFAN0UT000000000000000AA';
  const text = msh('OLD1');
  await store.receive({ id, channel: 'fanout', source: 'mllp 127.0.0.1:1', raw: Buffer.from(text), text, charset: 'UTF-8', controlId: 'OLD1' });
  const outputs = Array.from({ length: STAGES }, (_, i) => Buffer.from(`output ${i}\r`));
  await store.recordTransform(id, { status: 'transformed', outputs, destinations: ['out'], logs: '' });
  await store.close();

  const watches = await watchAll(t, dir);
  const engine = await startEngineProcess(t, configFile, dir);
  t.regex(engine.output(), new RegExp(`"channel":"fanout"[^\\n]*"recovered":${STAGES},"msg":"queued deliveries the message log held as queued but Redis did not"`));

  // Another channel answers and delivers while the big one works through its backlog.
  const load = startLoad({ port: ports.other, connections: 1, ackTimeoutMs: 30_000 });
  t.teardown(() => load.stop());
  await eventually(() => (load.acked().length >= 10 ? true : undefined), 60_000, 'the other channel answering');
  await load.stop();
  await eventually(() => (allDelivered(load, watches.other.names()) ? true : undefined), 60_000, 'the other channel delivering');

  // The old message's outputs go out from the first, in order (the destination is fifo).
  const first = await eventually(() => (watches.fanout.names().length >= 500 ? watches.fanout.names().slice(0, 500) : undefined), 120_000, 'the first 500 outputs');
  t.deepEqual(first, Array.from({ length: 500 }, (_, i) => `OLD1-${i}.hl7`));
  t.is((await fetch(`${engine.adminUrl}/healthz`)).status, 200);
  t.is(await engine.stop(), 0);
});
