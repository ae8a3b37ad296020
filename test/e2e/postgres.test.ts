import test, { type ExecutionContext } from 'ava';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';
import { tcpProxy } from '../helpers/tcp-proxy.ts';

// `ferry start` with a postgres destination, as a user runs it: HL7 over MLLP, a script that
// returns { mrn, name }, rows in a database each test creates and drops. Delivery outcomes are
// read back through the admin API's message log.

const hl7 = (controlId: string, mrn: string, family: string, given: string): string =>
  adtMessage({ controlId, mrn, name: `${family}^${given}`, facility: 'DB' });

const SCRIPT = `
export default function (msg: Message) {
  return { mrn: msg.get('PID-3.1'), name: \`\${msg.get('PID-5.2')} \${msg.get('PID-5.1')}\` };
}
`;

const PATIENTS = `CREATE TABLE patients (
  seq serial,
  ferry_id text PRIMARY KEY,
  mrn text NOT NULL CONSTRAINT patients_mrn UNIQUE,
  name text NOT NULL
)`;

const INSERT = 'INSERT INTO patients (ferry_id, mrn, name) VALUES (:ferry_id, :mrn, :name) ON CONFLICT (ferry_id) DO NOTHING';

interface Stage {
  stage: string;
  status: string;
  content: string | null;
  error: string | null;
  attempts: number;
}

interface Project {
  /** The running engine; replaced after a restart. */
  engine: EngineProcess;
  configFile: string;
  dir: string;
  send(controlId: string, mrn: string, family: string, given: string): Promise<void>;
  /** The db destination's stage of the message with this MSH-10, once it exists. */
  stage(controlId: string): Promise<Stage | undefined>;
}

const start = async (t: ExecutionContext, dbUrl: string, sql = INSERT, script = SCRIPT): Promise<Project> => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - name: db
        type: postgres
        url: ${dbUrl}
        sql: ${JSON.stringify(sql)}
        timeout: 5s
        retry: { attempts: 0, delay: 200ms, maxDelay: 1s }
`,
    }),
    { 'channels/adt.ts': script },
  );
  const engine = await startEngineProcess(t, configFile, dir);
  const client = openMllpClient(t, port);
  const project: Project = {
    engine,
    configFile,
    dir,
    async send(controlId, mrn, family, given) {
      const ack = await sendForAck(client, hl7(controlId, mrn, family, given));
      t.is(ack.code, 'AA', `ACK for ${controlId}`);
    },
    async stage(controlId) {
      const { body } = await project.engine.api<{ items: Array<{ id: string; controlId: string }> }>('/api/messages?channel=adt&limit=100');
      const item = body.items.find((m) => m.controlId === controlId);
      if (!item) return undefined;
      const { body: detail } = await project.engine.api<{ stages: Stage[] }>(`/api/messages/${item.id}`);
      return detail.stages.find((s) => s.stage === 'db#0');
    },
  };
  return project;
};

const database = async (t: ExecutionContext): Promise<TestDatabase> => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  await db.query(PATIENTS);
  return db;
};

const finished = (project: Project, controlId: string) =>
  eventually(
    async () => {
      const stage = await project.stage(controlId);
      return stage && (stage.status === 'sent' || stage.status === 'error') ? stage : undefined;
    },
    30_000,
    `${controlId} delivered or errored`,
  );

test('MLLP in, script returns { mrn, name }, a row per message; a constraint violation errors that message only', async (t) => {
  const db = await database(t);
  const project = await start(t, db.url);

  await project.send('MSG1', 'MRN1', 'DOE', 'JOHN');
  await project.send('MSG2', 'MRN2', 'ROE', 'ANN');
  await project.send('MSG3', 'MRN1', 'POE', 'EDGAR'); // MRN1 again: patients_mrn refuses it
  await project.send('MSG4', 'MRN4', 'LOE', 'MAX');

  const sent = await finished(project, 'MSG1');
  t.like(sent, { status: 'sent', attempts: 1, error: null });
  t.regex(sent.content ?? '', /^INSERT 1 row \(127\.0\.0\.1:5432\/ferry_test_\w+\)$/);

  // Permanent: tried once, PostgreSQL's message and SQLSTATE kept; the fifo queue moved on.
  const refused = await finished(project, 'MSG3');
  t.like(refused, { status: 'error', attempts: 1 });
  t.is(
    refused.error,
    'POSTGRES_REJECTED: PostgreSQL refused the statement: duplicate key value violates unique constraint "patients_mrn" (SQLSTATE 23505) Key (mrn)=(MRN1) already exists.',
  );
  t.like(await finished(project, 'MSG4'), { status: 'sent' });

  const rows = await db.query<{ ferry_id: string; mrn: string; name: string }>('SELECT ferry_id, mrn, name FROM patients ORDER BY seq');
  t.deepEqual(
    rows.map((r) => [r.mrn, r.name]),
    [
      ['MRN1', 'JOHN DOE'],
      ['MRN2', 'ANN ROE'],
      ['MRN4', 'MAX LOE'],
    ],
  );
  // ferry_id is the message id the message log knows the message by.
  const { body } = await project.engine.api<{ items: Array<{ id: string; controlId: string }> }>('/api/messages?channel=adt');
  t.is(rows[0]!.ferry_id, body.items.find((m) => m.controlId === 'MSG1')!.id);
  t.is(await project.engine.stop(), 0);
});

// A script that passes on a document it was given: here one nested 10,000 deep, which JSON.parse
// reads but JSON.stringify (a nested value as a statement parameter) cannot write.
const DOCUMENT_SCRIPT = `
export default function (msg: Message) {
  const depth = msg.get('PID-5.1') === 'DEEP' ? 10000 : 1;
  const doc = '['.repeat(depth) + ']'.repeat(depth);
  return \`{"mrn": \${JSON.stringify(msg.get('PID-3.1'))}, "name": \${JSON.stringify(msg.get('PID-5.1'))}, "doc": \${doc}}\`;
}
`;

test('a value nested 10,000 deep errors its message at once (DESTINATION_SERIALIZE_FAILED), and the fifo queue goes on', async (t) => {
  const db = await database(t);
  await db.query('ALTER TABLE patients ADD COLUMN doc jsonb');
  const project = await start(t, db.url, 'INSERT INTO patients (ferry_id, mrn, name, doc) VALUES (:ferry_id, :mrn, :name, :doc)', DOCUMENT_SCRIPT);

  await project.send('MSG1', 'MRN1', 'DEEP', 'JOHN');
  await project.send('MSG2', 'MRN2', 'ROE', 'ANN');

  // Permanent (retry.attempts is 0 here, "until delivered"): tried once, never again.
  const refused = await finished(project, 'MSG1');
  t.like(refused, { status: 'error', attempts: 1 });
  t.is(
    refused.error,
    'DESTINATION_SERIALIZE_FAILED: cannot build the statement parameters from this output: a value is nested too deeply (RangeError: Maximum call stack size exceeded); it would fail the same way on every try',
  );
  t.like(await finished(project, 'MSG2'), { status: 'sent', attempts: 1 });
  t.deepEqual(await db.query('SELECT mrn, name, doc FROM patients ORDER BY seq'), [{ mrn: 'MRN2', name: 'ROE', doc: [] }]);
  t.is(await project.engine.stop(), 0);
});

test('PostgreSQL down: acknowledged, retried, then delivered in order once it is back', async (t) => {
  const db = await database(t);
  const proxy = await tcpProxy(t, { host: '127.0.0.1', port: 5432 });
  await proxy.down();
  const url = new URL(db.url);
  url.port = String(proxy.port);
  const project = await start(t, url.href);

  await project.send('MSG1', 'MRN1', 'DOE', 'JOHN');
  await project.send('MSG2', 'MRN2', 'ROE', 'ANN');
  const waiting = await eventually(
    async () => {
      const stage = await project.stage('MSG1');
      return stage && stage.attempts >= 3 ? stage : undefined;
    },
    30_000,
    'three failed attempts',
  );
  t.is(waiting.status, 'queued');
  t.regex(waiting.error ?? '', new RegExp(`^POSTGRES_UNAVAILABLE: cannot use PostgreSQL at 127\\.0\\.0\\.1:${proxy.port}/${db.name}: .*ECONNREFUSED`));
  t.deepEqual(await db.query('SELECT * FROM patients'), []);

  await proxy.up();
  const sent = await finished(project, 'MSG2');
  t.is(sent.status, 'sent');
  t.true((await finished(project, 'MSG1')).attempts >= 3);
  t.deepEqual(await db.query('SELECT mrn FROM patients ORDER BY seq'), [{ mrn: 'MRN1' }, { mrn: 'MRN2' }]);
  t.is(await project.engine.stop(), 0);
});

test('kill -9 while a statement runs, then restart: ON CONFLICT (ferry_id) keeps one row per message', async (t) => {
  const db = await database(t);
  // The sleep keeps each statement running long enough to kill the engine in the middle of one;
  // PostgreSQL finishes and commits it anyway, so the restarted engine replays a delivery that
  // already happened.
  const slowInsert =
    'INSERT INTO patients (ferry_id, mrn, name) SELECT :ferry_id, :mrn, :name FROM pg_sleep(1) ON CONFLICT (ferry_id) DO NOTHING';
  const first = await start(t, db.url, slowInsert);
  const messages = [
    ['MSG1', 'MRN1', 'DOE', 'JOHN'],
    ['MSG2', 'MRN2', 'ROE', 'ANN'],
    ['MSG3', 'MRN3', 'POE', 'EDGAR'],
  ] as const;
  for (const [controlId, mrn, family, given] of messages) await first.send(controlId, mrn, family, given);

  const running = () =>
    db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ferry adt/db' AND state = 'active'",
      [db.name],
    );
  await eventually(async () => ((await running())[0]!.n > 0 ? true : undefined), 20_000, 'a statement in flight');
  await first.engine.kill();
  // The orphaned statement still commits its row.
  await eventually(async () => ((await running())[0]!.n === 0 ? true : undefined), 20_000, 'the orphaned statement to end');
  const before = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM patients'))[0]!.n;
  t.true(before >= 1, 'the killed delivery wrote its row');

  const second = await startEngineProcess(t, first.configFile, first.dir);
  first.engine = second;
  const stages = await eventually(
    async () => {
      const all = await Promise.all(messages.map(([controlId]) => first.stage(controlId)));
      return all.every((s) => s?.status === 'sent') ? (all as Stage[]) : undefined;
    },
    90_000,
    'every message sent after the restart',
  );

  const rows = await db.query<{ mrn: string; n: number }>('SELECT mrn, count(*)::int AS n FROM patients GROUP BY mrn ORDER BY mrn');
  t.deepEqual(rows, [
    { mrn: 'MRN1', n: 1 },
    { mrn: 'MRN2', n: 1 },
    { mrn: 'MRN3', n: 1 },
  ]);
  // The replayed delivery found its row already there: ON CONFLICT did nothing, and said so.
  t.true(
    stages.some((s) => /^INSERT 0 rows /.test(s.content ?? '')),
    stages.map((s) => s.content).join('\n'),
  );
  t.is(await second.stop(), 0);
});
