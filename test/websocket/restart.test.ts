import test from 'ava';
import { join } from 'node:path';
import { pino } from 'pino';
import { addToken } from '../../engine/auth/tokens.ts';
import { loadConfig } from '../../engine/config/load.ts';
import { startEngine, type Engine } from '../../engine/engine.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { sendOnce } from '../helpers/mllp.ts';
import { channelsYaml, writeProject } from '../helpers/project.ts';
import { eventually, tempDir } from '../helpers/temp.ts';
import { makeCerts } from '../https/helpers.ts';
import { connectAuthed } from './helpers.ts';

// The replay buffer lives in memory: across an engine restart the topic starts a new stream. A
// subscriber coming back with an id from before the restart is told it may have missed events
// (missed: null) and gets everything published since; messages themselves are never lost, and an
// event published before the restart is not published again.

const hl7 = (controlId: string, mrn: string): string =>
  adtMessage({ controlId, mrn, name: 'DOE^JANE', sender: 'REG', facility: 'BOARD', brief: true });

test('after a restart, an old lastEventId gets a gap with missed: null and the events since', async (t) => {
  const dir = await tempDir(t);
  const certs = await makeCerts(join(dir, 'certs'));
  const configFile = await writeProject(
    dir,
    channelsYaml({
      engine: `https: { host: 127.0.0.1, port: 0, cert: certs/server.crt, key: certs/server.key }
websocket: {}`,
      channels: `  - name: board
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations:
      - { name: screens, type: websocket, topic: adt }
`,
    }),
    { 'channels/board.ts': `export default (msg: Message) => ({ mrn: msg.get('PID-3.1') });\n` },
  );
  const token = await addToken(join(dir, 'tokens.yaml'), 'screen', ['adt']);
  const run = async (): Promise<Engine> => startEngine(await loadConfig(configFile), pino({ level: 'silent' }));
  const sendHl7 = async (engine: Engine, controlId: string, mrn: string): Promise<void> => {
    t.is((await sendOnce(engine.channels.get('board')!.sourcePort()!, hl7(controlId, mrn))).code, 'AA');
  };
  const wsUrl = (engine: Engine) => `${engine.https!.url.replace(/^https/, 'wss')}/ws`;

  const first = await run();
  let stopped = false;
  t.teardown(() => (stopped ? undefined : first.stop()));
  const before = await connectAuthed(t, wsUrl(first), token, { ca: certs.pem.ca });
  before.send({ type: 'subscribe', topic: 'adt' });
  await before.next('subscribed');
  await sendHl7(first, 'M1', 'MRN1');
  const seen = await before.next('event', 15_000);
  await first.stop();
  stopped = true;
  t.like(await before.closed, { code: 1001 });

  const second = await run();
  t.teardown(() => second.stop());
  await sendHl7(second, 'M2', 'MRN2');
  await eventually(() => (second.store.list({ channel: 'board', status: 'sent' }).items.length === 2 ? true : undefined), 15_000, 'M2 to be published');

  const after = await connectAuthed(t, wsUrl(second), token, { ca: certs.pem.ca });
  after.send({ type: 'subscribe', topic: 'adt', lastEventId: seen['id'] });
  t.like(await after.next(), { type: 'subscribed', replay: 1 });
  t.like(await after.next(), { type: 'gap', topic: 'adt', lastEventId: seen['id'], missed: null });
  const event = await after.next();
  t.like(event, { type: 'event', kwargs: { mrn: 'MRN2' } });
  t.not(String(event['id']).split('-')[0], String(seen['id']).split('-')[0], 'a new stream');
  t.regex(String(event['id']), /-1$/);
  t.deepEqual(after.pending(), [], 'MRN1 was not published again');
});
