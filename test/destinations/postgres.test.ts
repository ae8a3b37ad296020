import test, { type ExecutionContext } from 'ava';
import { DatabaseError } from 'pg';
import { pino } from 'pino';
import type { PostgresDestinationConfig } from '../../engine/destinations/postgres.ts';
import type { Delivery } from '../../engine/destinations/destination.ts';
import { classifyPostgresError, describeTarget, postgresDestination } from '../../engine/destinations/postgres.ts';
import { FerryError, isFerryError, type ErrorCode } from '../../engine/errors.ts';
import { encodeHl7 } from '../../engine/hl7/charset.ts';
import { captureLogger } from '../helpers/logger.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { freePort } from '../helpers/temp.ts';
import { tcpProxy } from '../helpers/tcp-proxy.ts';

// The destination against the machine's PostgreSQL, in a database this file creates and drops:
// rows checked by content, every failure checked for its class (transient or permanent) and for
// keeping PostgreSQL's message and SQLSTATE.

let db: TestDatabase;
let tables = 0;

test.before(async () => {
  db = await createTestDatabase();
});

test.after.always(() => db?.drop());

/** A fresh table per test, so tests run in parallel against one database. */
const table = async (columns: string): Promise<string> => {
  const name = `t${++tables}`;
  await db.query(`CREATE TABLE ${name} (${columns})`);
  return name;
};

const ID = '01JA0000000000000000000000';

const delivery = (content: string | Buffer, overrides: Partial<Delivery> = {}): Delivery => ({
  id: ID,
  channel: 'adt',
  destination: 'db',
  output: 0,
  content: typeof content === 'string' ? Buffer.from(content) : content,
  controlId: 'MSG1',
  receivedAt: Date.now(),
  ...overrides,
});

const config = (sql: string, overrides: Partial<PostgresDestinationConfig> = {}): PostgresDestinationConfig => ({
  name: 'db',
  type: 'postgres',
  order: 'fifo',
  retry: { attempts: 5, backoff: 'exponential', delayMs: 1000, maxDelayMs: 300_000 },
  url: db.url,
  sql,
  pool: { max: 2 },
  timeoutMs: 5_000,
  ...overrides,
});

const writer = (t: ExecutionContext, cfg: PostgresDestinationConfig) => {
  const { logger, lines } = captureLogger();
  const dest = postgresDestination(cfg, { logger, channel: 'adt' });
  t.teardown(() => dest.close());
  return { dest, lines };
};

const failure = async (t: ExecutionContext, sending: Promise<unknown>, code: ErrorCode, permanent: boolean): Promise<FerryError> => {
  const error = await t.throwsAsync(sending);
  t.true(isFerryError(error), String(error));
  t.like(error, { code, permanent });
  return error as FerryError;
};

test('writes the output object as a row: every JSON type, ferry_id and ferry_channel', async (t) => {
  const name = await table('ferry_id text PRIMARY KEY, ferry_channel text, mrn text, name text, age int, active boolean, tags jsonb, address jsonb, note text');
  const { dest } = writer(
    t,
    config(`INSERT INTO ${name} (ferry_id, ferry_channel, mrn, name, age, active, tags, address, note)
            VALUES (:ferry_id, :ferry_channel, :mrn, :name, :age, :active, :tags, :address, :note)`),
  );
  const output = { mrn: 'MRN1', name: "O'Brien; DROP TABLE x --", age: 42, active: true, tags: ['a', 'b'], address: { city: 'Oslo' }, note: null, unused: 1 };
  t.is(await dest.send(delivery(JSON.stringify(output))), `INSERT 1 row (127.0.0.1:5432/${db.name})`);
  // A second output of the same message gets its own stable id.
  await dest.send(delivery(JSON.stringify({ ...output, mrn: 'MRN2' }), { output: 1 }));

  const rows = await db.query(`SELECT * FROM ${name} ORDER BY mrn`);
  t.deepEqual(rows, [
    { ferry_id: ID, ferry_channel: 'adt', mrn: 'MRN1', name: "O'Brien; DROP TABLE x --", age: 42, active: true, tags: ['a', 'b'], address: { city: 'Oslo' }, note: null },
    { ferry_id: `${ID}-1`, ferry_channel: 'adt', mrn: 'MRN2', name: "O'Brien; DROP TABLE x --", age: 42, active: true, tags: ['a', 'b'], address: { city: 'Oslo' }, note: null },
  ]);
});

test('named parameters: repeated names, ::casts, and :x inside strings, identifiers and comments', async (t) => {
  const name = await table('a text, b text, c text, "d:x" text');
  const { dest } = writer(
    t,
    config(`INSERT INTO ${name} (a, b, c, "d:x") -- :nothing here
            VALUES (:x, ':x stays' || :x::text, :y::int::text, /* :z */ $$:x$$)`),
  );
  await dest.send(delivery(JSON.stringify({ x: 'X', y: '7' })));
  t.deepEqual(await db.query(`SELECT * FROM ${name}`), [{ a: 'X', b: ':x staysX', c: '7', 'd:x': ':x' }]);
});

test('the output is decoded in the inbound message character set', async (t) => {
  const name = await table('name text');
  const { dest } = writer(t, config(`INSERT INTO ${name} (name) VALUES (:name)`));
  const latin1 = Buffer.from(encodeHl7(JSON.stringify({ name: 'Müller' }), '8859/1'));
  t.is(latin1.length, '{"name":"Müller"}'.length); // one byte for ü: really latin-1, not UTF-8
  await dest.send(delivery(latin1, { charset: '8859/1' }));
  t.deepEqual(await db.query(`SELECT name FROM ${name}`), [{ name: 'Müller' }]);
});

test('a missing parameter is a permanent error naming it; nothing is written', async (t) => {
  const name = await table('mrn text, name text, dob text');
  const { dest } = writer(t, config(`INSERT INTO ${name} (mrn, name, dob) VALUES (:mrn, :name, :dob)`));
  const error = await failure(t, dest.send(delivery(JSON.stringify({ name: 'DOE' }))), 'POSTGRES_BAD_OUTPUT', true);
  t.is(error.message, 'the output has no value for :mrn, :dob (named in the sql); add them to the output, as null for NULL');
  t.deepEqual(error.details, { missing: ['mrn', 'dob'] });
  t.deepEqual(await db.query(`SELECT * FROM ${name}`), []);
});

const notObjects: Array<[string, string, RegExp]> = [
  ['HL7 text', 'MSH|^~\\&|REG|HOSP\r', /^the output is not JSON \(it starts "MSH\|\^~\\\\&\|REG\|HOSP\\r"\)/],
  ['a JSON string', '"MRN1"', /^the output is a string, not a JSON object/],
  ['a number', '42', /^the output is a number, not a JSON object/],
  ['null', 'null', /^the output is null, not a JSON object/],
  ['an array of non-objects', '[{"mrn":"A"}, 7]', /^element 1 of the output is a number, not an object$/],
];

for (const [title, content, message] of notObjects) {
  test(`an output that is ${title} is a permanent error`, async (t) => {
    const name = await table('mrn text');
    const { dest } = writer(t, config(`INSERT INTO ${name} (mrn) VALUES (:mrn)`));
    const error = await failure(t, dest.send(delivery(content)), 'POSTGRES_BAD_OUTPUT', true);
    t.regex(error.message, message);
    t.deepEqual(await db.query(`SELECT * FROM ${name}`), []);
  });
}

test('a value nested too deeply to serialize as a parameter is permanent (DESTINATION_SERIALIZE_FAILED); nothing is sent', async (t) => {
  const name = await table('mrn text, doc jsonb');
  const { dest } = writer(t, config(`INSERT INTO ${name} (mrn, doc) VALUES (:mrn, :doc)`));
  // JSON.parse reads 10,000 levels; JSON.stringify, turning `doc` back into a parameter, cannot.
  const deep = `{"mrn": "MRN1", "doc": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
  const error = await failure(t, dest.send(delivery(deep)), 'DESTINATION_SERIALIZE_FAILED', true);
  t.is(
    error.message,
    'cannot build the statement parameters from this output: a value is nested too deeply (RangeError: Maximum call stack size exceeded); it would fail the same way on every try',
  );
  t.true(error.cause instanceof RangeError);
  t.deepEqual(await db.query(`SELECT * FROM ${name}`), []);
  // The destination is not harmed: the next output goes in.
  await dest.send(delivery('{"mrn": "MRN2", "doc": [[1]]}'));
  t.deepEqual(await db.query(`SELECT mrn, doc FROM ${name}`), [{ mrn: 'MRN2', doc: [[1]] }]);
});

test('an array of objects runs once per element in one transaction, with ferry_row', async (t) => {
  const name = await table('ferry_id text, ferry_row int, code text, value numeric, PRIMARY KEY (ferry_id, ferry_row)');
  const { dest } = writer(t, config(`INSERT INTO ${name} (ferry_id, ferry_row, code, value) VALUES (:ferry_id, :ferry_row, :code, :value)`));
  const results = [
    { code: 'GLU', value: 5.4 },
    { code: 'NA', value: 140 },
    { code: 'K', value: 4.1 },
  ];
  t.is(await dest.send(delivery(JSON.stringify(results))), `3 statements in one transaction, INSERT 3 rows (127.0.0.1:5432/${db.name})`);
  t.deepEqual(await db.query(`SELECT ferry_id, ferry_row, code, value::text FROM ${name} ORDER BY ferry_row`), [
    { ferry_id: ID, ferry_row: 0, code: 'GLU', value: '5.4' },
    { ferry_id: ID, ferry_row: 1, code: 'NA', value: '140' },
    { ferry_id: ID, ferry_row: 2, code: 'K', value: '4.1' },
  ]);
  t.is(await dest.send(delivery('[]')), 'nothing written: the output is an empty array');
});

test('a failing element rolls the whole array back, and the connection stays usable', async (t) => {
  const name = await table('code text PRIMARY KEY');
  const { dest } = writer(t, config(`INSERT INTO ${name} (code) VALUES (:code)`, { pool: { max: 1 } }));
  const error = await failure(t, dest.send(delivery(JSON.stringify([{ code: 'A' }, { code: 'B' }, { code: 'A' }]))), 'POSTGRES_REJECTED', true);
  t.regex(error.message, /duplicate key value violates unique constraint "t\d+_pkey" \(SQLSTATE 23505\) Key \(code\)=\(A\) already exists\./);
  t.deepEqual(await db.query(`SELECT * FROM ${name}`), []);
  // One connection in the pool: this only works if the failed transaction was rolled back.
  await dest.send(delivery(JSON.stringify([{ code: 'A' }, { code: 'B' }])));
  t.deepEqual(await db.query(`SELECT code FROM ${name} ORDER BY code`), [{ code: 'A' }, { code: 'B' }]);
});

test('a constraint violation is permanent, keeps the PostgreSQL message and code, and logs an alert', async (t) => {
  const name = await table('mrn text CONSTRAINT patients_mrn UNIQUE, name text NOT NULL');
  const { dest, lines } = writer(t, config(`INSERT INTO ${name} (mrn, name) VALUES (:mrn, :name)`));
  await dest.send(delivery(JSON.stringify({ mrn: 'MRN1', name: 'DOE' })));
  const error = await failure(t, dest.send(delivery(JSON.stringify({ mrn: 'MRN1', name: 'ROE' }))), 'POSTGRES_REJECTED', true);
  t.is(error.message, 'PostgreSQL refused the statement: duplicate key value violates unique constraint "patients_mrn" (SQLSTATE 23505) Key (mrn)=(MRN1) already exists.');
  t.like(error.details, { sqlstate: '23505', constraint: 'patients_mrn', table: name });
  const alert = lines.find((line) => line['alert'] === true);
  t.like(alert, { level: 50, code: 'POSTGRES_REJECTED', id: ID, sqlstate: '23505', destination: 'db' });
  t.deepEqual(await db.query(`SELECT mrn, name FROM ${name}`), [{ mrn: 'MRN1', name: 'DOE' }]);
});

const rejected: Array<[string, string, string, Record<string, unknown>, string]> = [
  ['not null', 'INSERT INTO {t} (n) VALUES (:v)', 'n int NOT NULL', { v: null }, '23502'],
  ['check', 'INSERT INTO {t} (n) VALUES (:v)', 'n int CHECK (n > 0)', { v: -1 }, '23514'],
  ['bad integer', 'INSERT INTO {t} (n) VALUES (:v)', 'n int', { v: 'abc' }, '22P02'],
  ['value too long', 'INSERT INTO {t} (s) VALUES (:v)', 's varchar(3)', { v: 'abcd' }, '22001'],
  ['unknown table', 'INSERT INTO no_such_table (n) VALUES (:v)', 'n int', { v: 1 }, '42P01'],
  ['unknown column', 'INSERT INTO {t} (nope) VALUES (:v)', 'n int', { v: 1 }, '42703'],
  ['syntax error', 'INSERT INTO {t} (n) VALUS (:v)', 'n int', { v: 1 }, '42601'],
];

for (const [title, sql, columns, output, sqlstate] of rejected) {
  test(`permanent: ${title} (${sqlstate})`, async (t) => {
    const name = await table(columns);
    const { dest } = writer(t, config(sql.replace('{t}', name)));
    const error = await failure(t, dest.send(delivery(JSON.stringify(output))), 'POSTGRES_REJECTED', true);
    t.true(error.message.includes(`(SQLSTATE ${sqlstate})`), error.message);
    t.is(error.details?.['sqlstate'], sqlstate);
  });
}

test('a statement past the timeout is cancelled by the server and retried (57014)', async (t) => {
  const { dest } = writer(t, config('SELECT pg_sleep(:seconds)', { timeoutMs: 300 }));
  const started = Date.now();
  const error = await failure(t, dest.send(delivery('{"seconds": 5}')), 'POSTGRES_UNAVAILABLE', false);
  t.true(Date.now() - started < 2_000);
  t.regex(error.message, /canceling statement due to statement timeout \(SQLSTATE 57014\)/);
  t.is(await dest.send(delivery('{"seconds": 0}')), `SELECT 1 row (127.0.0.1:5432/${db.name})`);
});

test('PostgreSQL unreachable is transient; the same destination delivers once it is back', async (t) => {
  const name = await table('mrn text');
  const proxy = await tcpProxy(t, { host: '127.0.0.1', port: 5432 });
  const url = new URL(db.url);
  url.port = String(proxy.port);
  const { dest } = writer(t, config(`INSERT INTO ${name} (mrn) VALUES (:mrn)`, { url: url.href }));

  // Connected once, then the server goes away: the pooled connection dies and new ones are refused.
  await dest.send(delivery('{"mrn": "BEFORE"}'));
  await proxy.down();
  const error = await failure(t, dest.send(delivery('{"mrn": "DURING"}')), 'POSTGRES_UNAVAILABLE', false);
  t.regex(error.message, new RegExp(`^cannot use PostgreSQL at 127\\.0\\.0\\.1:${proxy.port}/${db.name}: `));
  t.false(error.message.includes('postgres@'), 'no credentials in the message');
  const again = await failure(t, dest.send(delivery('{"mrn": "DURING"}')), 'POSTGRES_UNAVAILABLE', false);
  t.regex(again.message, /ECONNREFUSED/);

  await proxy.up();
  await dest.send(delivery('{"mrn": "AFTER"}'));
  t.deepEqual(await db.query(`SELECT mrn FROM ${name} ORDER BY mrn`), [{ mrn: 'AFTER' }, { mrn: 'BEFORE' }]);
});

test('a closed port is transient (connection refused), with no password in the message', async (t) => {
  const port = await freePort();
  const { dest } = writer(t, config('SELECT :x::int', { url: `postgres://ferry:s3cret@127.0.0.1:${port}/clinic` }));
  const error = await failure(t, dest.send(delivery('{"x": 1}')), 'POSTGRES_UNAVAILABLE', false);
  t.is(error.message, `cannot use PostgreSQL at 127.0.0.1:${port}/clinic: connect ECONNREFUSED 127.0.0.1:${port}`);
});

test('a database that does not exist is transient: every message waits for the fix alike', async (t) => {
  const url = new URL(db.url);
  url.pathname = '/ferry_no_such_database';
  const { dest } = writer(t, config('SELECT :x::int', { url: url.href }));
  const error = await failure(t, dest.send(delivery('{"x": 1}')), 'POSTGRES_UNAVAILABLE', false);
  t.regex(error.message, /database "ferry_no_such_database" does not exist \(SQLSTATE 3D000\)/);
});

const databaseError = (code: string, message = 'boom'): DatabaseError => Object.assign(new DatabaseError(message, 0, 'error'), { code });
const socketError = (code: string): Error => Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });

const classes: Array<[string, unknown, ErrorCode]> = [
  ['ECONNREFUSED', socketError('ECONNREFUSED'), 'POSTGRES_UNAVAILABLE'],
  ['ETIMEDOUT', socketError('ETIMEDOUT'), 'POSTGRES_UNAVAILABLE'],
  ['ECONNRESET', socketError('ECONNRESET'), 'POSTGRES_UNAVAILABLE'],
  ['EPIPE (five letters, yet no SQLSTATE)', socketError('EPIPE'), 'POSTGRES_UNAVAILABLE'],
  ['refused on IPv4 and IPv6', Object.assign(new AggregateError([socketError('ECONNREFUSED')], ''), { code: 'ECONNREFUSED' }), 'POSTGRES_UNAVAILABLE'],
  ['connection terminated', new Error('Connection terminated unexpectedly'), 'POSTGRES_UNAVAILABLE'],
  ['pool connect timeout', new Error('timeout exceeded when trying to connect'), 'POSTGRES_UNAVAILABLE'],
  ['57P01 admin shutdown', databaseError('57P01'), 'POSTGRES_UNAVAILABLE'],
  ['57P03 cannot connect now', databaseError('57P03'), 'POSTGRES_UNAVAILABLE'],
  ['08006 connection failure', databaseError('08006'), 'POSTGRES_UNAVAILABLE'],
  ['08001 cannot establish', databaseError('08001'), 'POSTGRES_UNAVAILABLE'],
  ['53300 too many connections', databaseError('53300'), 'POSTGRES_UNAVAILABLE'],
  ['53100 disk full', databaseError('53100'), 'POSTGRES_UNAVAILABLE'],
  ['40001 serialization failure', databaseError('40001'), 'POSTGRES_UNAVAILABLE'],
  ['40P01 deadlock', databaseError('40P01'), 'POSTGRES_UNAVAILABLE'],
  ['55P03 lock not available', databaseError('55P03'), 'POSTGRES_UNAVAILABLE'],
  ['28P01 bad password', databaseError('28P01'), 'POSTGRES_UNAVAILABLE'],
  ['23505 unique violation', databaseError('23505'), 'POSTGRES_REJECTED'],
  ['23503 foreign key violation', databaseError('23503'), 'POSTGRES_REJECTED'],
  ['42P01 undefined table', databaseError('42P01'), 'POSTGRES_REJECTED'],
  ['42703 undefined column', databaseError('42703'), 'POSTGRES_REJECTED'],
  ['42601 syntax error', databaseError('42601'), 'POSTGRES_REJECTED'],
  ['22P02 invalid text', databaseError('22P02'), 'POSTGRES_REJECTED'],
  ['22003 out of range', databaseError('22003'), 'POSTGRES_REJECTED'],
  ['P0001 raised by a trigger', databaseError('P0001'), 'POSTGRES_REJECTED'],
];

for (const [title, error, code] of classes) {
  test(`classifies ${title} as ${code}`, (t) => {
    const classified = classifyPostgresError(error, '127.0.0.1:5432/clinic');
    t.is(classified.code, code);
    t.is(classified.permanent, code === 'POSTGRES_REJECTED');
    t.is(classified.cause, error);
    t.not(classified.message.split(': ').at(-1), '', 'the reason is never empty');
  });
}

test('describeTarget names host, port and database, never the password', (t) => {
  t.is(describeTarget('postgres://ferry:s3cret@db.example.org:6543/clinic'), 'db.example.org:6543/clinic');
  t.is(describeTarget('postgresql://ferry@db.example.org'), 'db.example.org:5432/ferry');
  t.is(describeTarget('postgres://db.example.org/my%20db'), 'db.example.org:5432/my db');
});

test('close is safe twice, and a closed destination refuses to send', async (t) => {
  const { dest } = writer(t, config('SELECT :x::int'));
  t.is(await dest.send(delivery('{"x": 1}')), `SELECT 1 row (127.0.0.1:5432/${db.name})`);
  await dest.close();
  await dest.close();
  await failure(t, dest.send(delivery('{"x": 1}')), 'ENGINE_SHUTTING_DOWN', false);
});

test('the SQL is compiled when the destination is made: a bad one never reaches the server', (t) => {
  const bad = config("INSERT INTO t VALUES ('open", { url: 'postgres://nobody@127.0.0.1:1/x' });
  const error = t.throws(() => postgresDestination(bad, { logger: pino({ level: 'silent' }), channel: 'adt' }));
  t.like(error, { code: 'CONFIG_INVALID' });
});
