import { randomBytes } from 'node:crypto';
import pg from 'pg';

// A private database on the machine's PostgreSQL for a test file or a test, dropped at its end. There is
// no skip: CI runs PostgreSQL, so a server that cannot be reached fails these tests loudly.

/** The server's maintenance connection; FERRY_TEST_POSTGRES_URL overrides the default. */
export const ADMIN_URL = process.env['FERRY_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  name: string;
  /** postgres://…/<name> */
  url: string;
  /** Runs SQL on the test database (DDL, or reading rows back). */
  query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, values?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

const withAdmin = async <T>(run: (client: pg.Client) => Promise<T>): Promise<T> => {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (cause) {
    throw new Error(
      `PostgreSQL is not reachable at ${ADMIN_URL} (${(cause as Error).message || (cause as { code?: string }).code}); ` +
        'the postgres destination tests need it: start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`',
      { cause },
    );
  }
  try {
    return await run(client);
  } finally {
    await client.end();
  }
};

/** A new, empty database; `drop()` (safe to call twice) removes it with everything in it. */
export const createTestDatabase = async (): Promise<TestDatabase> => {
  const name = `ferry_test_${randomBytes(6).toString('hex')}`;
  await withAdmin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.href, max: 2 });
  let dropped: Promise<void> | undefined;
  return {
    name,
    url: url.href,
    query: async <T extends pg.QueryResultRow>(sql: string, values: unknown[] = []) => (await pool.query<T>(sql, values)).rows,
    drop() {
      dropped ??= (async () => {
        await pool.end();
        // FORCE: an engine killed with -9 may leave its connections behind for a moment.
        await withAdmin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
      })();
      return dropped;
    },
  };
};
