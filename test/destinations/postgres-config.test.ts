import test from 'ava';
import { parseConfig } from '../../engine/config/load.ts';
import type { PostgresDestinationConfig } from '../../engine/destinations/postgres.ts';
import { FerryError } from '../../engine/errors.ts';

// The postgres destination's keys in channels.yaml: defaults, values, ${ENV} in the URL, and the
// mistakes `ferry check` reports before a message ever reaches the database.

const config = (destination: string): string => `channels:
  - name: a
    source: { type: mllp, port: 6661 }
    destinations:
      - name: db
        type: postgres
${destination
  .split('\n')
  .map((line) => `        ${line}`)
  .join('\n')}
`;

const parse = (destination: string, env: NodeJS.ProcessEnv = {}) =>
  parseConfig(config(destination), '/tmp/ferry-config-test/channels.yaml', env).channels[0]!.destinations[0] as PostgresDestinationConfig;

const SQL = 'sql: "INSERT INTO patients (mrn) VALUES (:mrn)"';

test('defaults: pool of 5, 30 s timeout, fifo, the usual retry', (t) => {
  t.deepEqual(parse(`url: postgres://ferry@db.example.org/clinic\n${SQL}`), {
    name: 'db',
    type: 'postgres',
    order: 'fifo',
    retry: { attempts: 5, backoff: 'exponential', delayMs: 1_000, maxDelayMs: 300_000 },
    url: 'postgres://ferry@db.example.org/clinic',
    sql: 'INSERT INTO patients (mrn) VALUES (:mrn)',
    pool: { max: 5 },
    timeoutMs: 30_000,
  });
});

test('set: pool, timeout, order, retry, a multi-line sql block', (t) => {
  const parsed = parse(
    [
      'url: postgresql://ferry@127.0.0.1:5433/test',
      'pool: { max: 2 }',
      'timeout: 5s',
      'order: parallel',
      'retry: { attempts: 0, delay: 2s }',
      'sql: |',
      '  INSERT INTO patients (ferry_id, mrn)',
      '  VALUES (:ferry_id, :mrn)',
      '  ON CONFLICT (ferry_id) DO NOTHING',
    ].join('\n'),
  );
  t.like(parsed, { url: 'postgresql://ferry@127.0.0.1:5433/test', pool: { max: 2 }, timeoutMs: 5_000, order: 'parallel', retry: { attempts: 0, delayMs: 2_000 } });
  t.is(parsed.sql, 'INSERT INTO patients (ferry_id, mrn)\nVALUES (:ferry_id, :mrn)\nON CONFLICT (ferry_id) DO NOTHING\n');
});

test('${ENV} fills the password in the URL', (t) => {
  const parsed = parse(`url: "postgres://ferry:\${PGPASSWORD}@db.example.org/clinic"\n${SQL}`, { PGPASSWORD: 's3cret' });
  t.is(parsed.url, 'postgres://ferry:s3cret@db.example.org/clinic');
});

const mistakes: Array<[string, string, RegExp]> = [
  ['not a postgres URL', `url: mysql://db/clinic\n${SQL}`, /destinations\[0\]\.url: must be a postgres:\/\/ or postgresql:\/\/ URL \(got "mysql:\/\/db\/clinic"\)/],
  ['an unparseable URL', `url: "postgres://ferry:p@ss@[db/clinic"\n${SQL}`, /destinations\[0\]\.url: not a valid URL \(percent-encode @, : and \/ in the user name or password\)/],
  ['no url', SQL, /destinations\[0\]: missing required key "url"/],
  ['no sql', 'url: postgres://db/clinic', /destinations\[0\]: missing required key "sql"/],
  ['an unterminated string in the sql', `url: postgres://db/clinic\nsql: "INSERT INTO t VALUES ('x, :a)"`, /destinations\[0\]\.sql: unterminated string starting at line 1, column 23/],
  ['two statements', 'url: postgres://db/clinic\nsql: "DELETE FROM t; INSERT INTO t VALUES (:a)"', /destinations\[0\]\.sql: only one statement is allowed/],
  ['positional parameters', 'url: postgres://db/clinic\nsql: "INSERT INTO t VALUES ($1)"', /destinations\[0\]\.sql: use :name parameters, not positional ones like \$1/],
  ['pool of 0', `url: postgres://db/clinic\n${SQL}\npool: { max: 0 }`, /destinations\[0\]\.pool\.max: must be at least 1 \(got 0\)/],
  ['a bad timeout', `url: postgres://db/clinic\n${SQL}\ntimeout: soon`, /destinations\[0\]\.timeout: must be a duration/],
  ['an unknown key', `url: postgres://db/clinic\n${SQL}\nquery: x`, /destinations\[0\]\.query: unknown key "query"/],
];

for (const [title, destination, message] of mistakes) {
  test(`mistake: ${title}`, (t) => {
    const error = t.throws(() => parse(destination), { instanceOf: FerryError });
    t.is(error?.code, 'CONFIG_INVALID');
    t.regex(error?.message ?? '', message);
    t.regex(error?.message ?? '', /^\/tmp\/ferry-config-test\/channels\.yaml:\d+:\d+ /, 'file:line:column first');
  });
}
