import test from 'ava';
import { startTestEngine } from '../helpers/admin.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// GET /metrics: the ferry_* series read from the message log, the queues and the channels.

const SCRIPT = `export default function (msg: Message) {
  if (msg.get('MSH-9.1') !== 'ADT') return null;
  return msg;
}
`;

/** `name{labels} value` lines → a map from `name{labels}` to the value. */
const parse = (text: string): Map<string, number> =>
  new Map(
    text
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => {
        const at = line.lastIndexOf(' ');
        return [line.slice(0, at), Number(line.slice(at + 1))];
      }),
  );

test('/metrics: messages by channel and status, queue depths, channel up, process metrics', async (t) => {
  const port = await freePort();
  const engine = await startTestEngine(
    t,
    channelsYaml({
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: archive, type: file, dir: ./out }
      - { name: to-lab, type: channel, channel: lab }
  - name: lab
    source: { type: channel }
    destinations: [{ name: files, type: file, dir: ./out-lab }]
`,
    }),
    { 'channels/adt.ts': SCRIPT },
  );
  await engine.api('POST', '/api/channels/lab/stop');
  const client = openMllpClient(t, port);
  const send = async (type: string, id: string) =>
    (await sendForAck(client, `MSH|^~\\&|REG|HOSP|FERRY|LAB|20260101120000||${type}|${id}|P|2.5\rPID|1||MRN1\r`)).code;
  t.is(await send('ADT^A01', 'M1'), 'AA');
  t.is(await send('ADT^A08', 'M2'), 'AA');
  t.is(await send('ORU^R01', 'M3'), 'AA');
  t.is((await sendForAck(client, 'not hl7')).code, 'AR');

  const scrape = async () => {
    const response = await fetch(`${engine.base}/metrics`);
    t.is(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    return { text: await response.text(), values: parse(await (await fetch(`${engine.base}/metrics`)).text()) };
  };
  const { text, values } = await eventually(async () => {
    const scraped = await scrape();
    return scraped.values.get('ferry_messages_total{channel="adt",status="sent"}') === 2 &&
      scraped.values.get('ferry_queue_depth{channel="lab",queue="inbound"}') === 2
      ? scraped
      : undefined;
  });

  const ferry = [...values].filter(([key]) => key.startsWith('ferry_'));
  t.deepEqual(Object.fromEntries(ferry), {
    // Four logged (one refused at intake: received, then error), two transformed and queued for delivery, one filtered.
    'ferry_messages_total{channel="adt",status="received"}': 4,
    'ferry_messages_total{channel="adt",status="filtered"}': 1,
    'ferry_messages_total{channel="adt",status="transformed"}': 0,
    'ferry_messages_total{channel="adt",status="queued"}': 2,
    'ferry_messages_total{channel="adt",status="sent"}': 2,
    'ferry_messages_total{channel="adt",status="error"}': 1,
    // lab is stopped: its two hand-offs are logged and wait in its inbound queue.
    'ferry_messages_total{channel="lab",status="received"}': 2,
    'ferry_messages_total{channel="lab",status="filtered"}': 0,
    'ferry_messages_total{channel="lab",status="transformed"}': 0,
    'ferry_messages_total{channel="lab",status="queued"}': 0,
    'ferry_messages_total{channel="lab",status="sent"}': 0,
    'ferry_messages_total{channel="lab",status="error"}': 0,
    'ferry_queue_depth{channel="adt",queue="inbound"}': 0,
    'ferry_queue_depth{channel="adt",queue="archive"}': 0,
    'ferry_queue_depth{channel="adt",queue="to-lab"}': 0,
    'ferry_queue_depth{channel="lab",queue="inbound"}': 2,
    'ferry_queue_depth{channel="lab",queue="files"}': 0,
    'ferry_channel_up{channel="adt"}': 1,
    'ferry_channel_up{channel="lab"}': 0,
  });
  t.regex(text, /^# TYPE ferry_messages_total counter$/m);
  t.regex(text, /^# TYPE ferry_queue_depth gauge$/m);
  t.regex(text, /^process_cpu_seconds_total \d/m);
  t.regex(text, /^process_resident_memory_bytes \d/m);
  t.regex(text, /^nodejs_eventloop_lag_seconds \d/m);

  // Retention removing old messages does not make the counters go down.
  engine.engine.store.purge(Date.now() + 1000);
  t.is((await scrape()).values.get('ferry_messages_total{channel="adt",status="sent"}'), 2);
});
