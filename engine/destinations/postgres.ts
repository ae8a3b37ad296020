// Runs one parameterized SQL statement per output, with `:name` parameters filled from the
// script's JSON output object, in a connection pool. Values only ever travel as parameters: the
// statement is compiled once, here, and never has text spliced into it.
//
// An output that is a JSON array of objects runs the statement once per element, all in one
// transaction: every row is written or none is, and a retry repeats the whole batch.
//
// The outcome decides the retry, by class. Transient (POSTGRES_UNAVAILABLE): the server cannot be
// reached or logged into, the connection broke or timed out, or it refused for a passing reason
// (shutdown, resources, serialization failure, deadlock, lock timeout). Permanent (POSTGRES_REJECTED):
// any other error the server reports about the statement — constraint violations (23xxx), bad SQL,
// unknown tables or columns (42xxx), bad data (22xxx) — with PostgreSQL's message and SQLSTATE kept.
// Ferry's own work before the statement (reading the output's JSON, serializing nested values as
// parameters) fails the same way on every try: POSTGRES_BAD_OUTPUT or DESTINATION_SERIALIZE_FAILED.
import { Type } from '@sinclair/typebox';
import { DatabaseError, Pool, type PoolClient, type QueryResult } from 'pg';
import type { Logger } from 'pino';
import type { DestinationConfig } from '../config/contract.ts';
import { Duration, Tag, durationMs } from '../config/units.ts';
import type { DestinationConnector } from '../connector.ts';
import { FerryError } from '../errors.ts';
import { decodeAs } from '../hl7/charset.ts';
import { deliveryMessageId } from '../wire/ids.ts';
import type { Delivery, Destination } from './destination.ts';
import { compileNamedSql } from './named-sql.ts';
import { building } from './serialize-failure.ts';

export interface PostgresDestinationConfig extends DestinationConfig {
  type: 'postgres';
  /** postgres:// or postgresql:// URL, password included (the admin API redacts it). */
  url: string;
  /** One statement with :name parameters; compiled by destinations/named-sql.ts. */
  sql: string;
  pool: { max: number };
  /** Connecting, and each statement (statement_timeout). */
  timeoutMs: number;
}

const defaults = { pool: { max: 5 }, timeout: '30s' } as const;

const schema = Type.Object(
  {
    type: Tag('postgres', 'Run a parameterized SQL statement in PostgreSQL for each output, e.g. INSERT a row.'),
    url: Type.String({
      pattern: '^postgres(?:ql)?://\\S+$',
      patternErrorMessage: 'must be a postgres:// or postgresql:// URL',
      title: 'URL',
      description:
        'The database, as postgres://user:password@host:5432/database; use ${PGPASSWORD} (or any ${ENV_VAR}) to keep the password out of the file, percent-encoded if it has @, : or /.',
      examples: ['postgres://ferry:${PGPASSWORD}@db.example.org:5432/clinic', 'postgresql://postgres@127.0.0.1/test'],
    }),
    sql: Type.String({
      minLength: 1,
      title: 'SQL',
      description:
        'One statement with :name parameters, filled from the JSON object the script returns (an array of objects runs it once per element, in one transaction). :ferry_id (the stable message id), :ferry_channel and :ferry_row (element index) come from Ferry. Values are always sent as parameters, never spliced into the SQL.',
      examples: ['INSERT INTO patients (ferry_id, mrn, name) VALUES (:ferry_id, :mrn, :name) ON CONFLICT (ferry_id) DO NOTHING'],
    }),
    pool: Type.Optional(
      Type.Object(
        {
          max: Type.Optional(
            Type.Integer({
              minimum: 1,
              title: 'Maximum connections',
              description: 'Connections the destination opens at most; deliveries beyond wait for a free one.',
              default: defaults.pool.max,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Pool',
          description: 'The connection pool.',
          default: defaults.pool,
        },
      ),
    ),
    timeout: Type.Optional(
      Duration({
        title: 'Timeout',
        description: 'Longest a connection attempt, or one statement (statement_timeout), may take; then it counts as a transient failure.',
        default: defaults.timeout,
      }),
    ),
  },
  { additionalProperties: false, title: 'PostgreSQL destination', description: 'Writes each output to PostgreSQL with a parameterized statement.' },
);

/** Parameters Ferry fills itself; an output key of the same name is ignored. */
export interface FerryParameters {
  /** The stable message id (with -<n> for outputs after the first): a unique key drops replays. */
  ferry_id: string;
  ferry_channel: string;
  /** The element's index when the output is an array; 0 for a single object. */
  ferry_row: number;
}

type Parameter = string | number | boolean | null;

/**
 * The client-side backstop behind the server's statement_timeout: a statement the server cancels
 * (57014) leaves a healthy connection; one lost on a silent network needs the client to give up.
 */
const CLIENT_TIMEOUT_GRACE_MS = 2_000;

// SQLSTATE classes and codes worth retrying: the statement was fine, the moment was not. Auth
// (28xxx) and a missing database (3D000) are here too: they hold back every message alike until
// the destination is fixed, and no message is at fault.
const TRANSIENT_CLASSES = new Set(['08', '28', '53', '57', '58', 'XX']);
const TRANSIENT_CODES = new Set(['40001', '40P01', '40003', '55P03', '55006', '3D000']);

export const isTransientSqlState = (code: string): boolean => TRANSIENT_CLASSES.has(code.slice(0, 2)) || TRANSIENT_CODES.has(code);

/** host:port/database of a postgres:// URL, never its password. */
export const describeTarget = (url: string): string => {
  const parsed = new URL(url);
  const database = decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username) || 'postgres';
  return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}/${database}`;
};

/** The text of a failure; a refused connection to "localhost" (IPv4 and IPv6) is an AggregateError with no message. */
const reasonOf = (error: Error & { code?: string }): string => {
  const nested = error instanceof AggregateError ? (error.errors[0] as Error | undefined) : undefined;
  const message = error.message || nested?.message || 'connection failed';
  return error.code && !message.includes(error.code) ? `${error.code}: ${message}` : message;
};

/** A pg or socket failure as a FerryError with its class: the one place that decides retries. */
export const classifyPostgresError = (error: unknown, target: string): FerryError => {
  if (error instanceof FerryError) return error;
  const failure: Error & { code?: string } = error instanceof Error ? error : new Error(String(error));
  // Only the server's own error reports carry a SQLSTATE; a socket's code (EPIPE) is no SQLSTATE.
  if (failure instanceof DatabaseError) {
    const db = failure;
    const details = Object.fromEntries(
      Object.entries({
        sqlstate: db.code,
        detail: db.detail,
        hint: db.hint,
        constraint: db.constraint,
        table: db.table,
        column: db.column,
        position: db.position,
      }).filter(([, value]) => value !== undefined),
    );
    const extra = db.detail ? ` ${db.detail}` : '';
    if (db.code !== undefined && isTransientSqlState(db.code)) {
      const message = `PostgreSQL at ${target}: ${db.message} (SQLSTATE ${db.code})${extra}`;
      return new FerryError('POSTGRES_UNAVAILABLE', message, { cause: error, details });
    }
    const message = `PostgreSQL refused the statement: ${db.message} (SQLSTATE ${db.code ?? 'unknown'})${extra}`;
    return new FerryError('POSTGRES_REJECTED', message, { cause: error, details });
  }
  // No SQLSTATE: the socket or the driver failed (refused, reset, DNS, timeouts). Retrying may help.
  return new FerryError('POSTGRES_UNAVAILABLE', `cannot use PostgreSQL at ${target}: ${reasonOf(failure)}`, {
    cause: error,
    details: failure.code === undefined ? {} : { code: failure.code },
  });
};

type JsonObject = Record<string, unknown>;

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

const kindOf = (value: unknown): string => {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
};

/** The rows an output holds: one object, or the elements of an array of objects. */
export const rowsOf = (text: string): JsonObject[] => {
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (cause) {
    const start = JSON.stringify(text.slice(0, 40));
    throw new FerryError('POSTGRES_BAD_OUTPUT', `the output is not JSON (it starts ${start}); return an object such as { mrn, name }`, { cause });
  }
  if (isObject(value)) return [value];
  if (Array.isArray(value)) {
    const bad = value.findIndex((element) => !isObject(element));
    if (bad >= 0) throw new FerryError('POSTGRES_BAD_OUTPUT', `element ${bad} of the output is ${kindOf(value[bad])}, not an object`);
    return value as JsonObject[];
  }
  throw new FerryError('POSTGRES_BAD_OUTPUT', `the output is ${kindOf(value)}, not a JSON object (or an array of objects)`);
};

/** A JSON value as a statement parameter: objects and arrays as JSON text (pg would make arrays PostgreSQL arrays). */
const parameterValue = (value: unknown): Parameter => {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  return JSON.stringify(value);
};

/** The values for $1…$n, in the order of `names`; throws naming every parameter the row lacks. */
export const parameterValues = (names: readonly string[], row: JsonObject, ferry: FerryParameters, where: string): Parameter[] => {
  const missing = names.filter((name) => !Object.hasOwn(ferry, name) && !Object.hasOwn(row, name));
  if (missing.length > 0) {
    const list = missing.map((name) => `:${name}`).join(', ');
    const fix = `add ${missing.length === 1 ? 'it' : 'them'} to the output, as null for NULL`;
    throw new FerryError('POSTGRES_BAD_OUTPUT', `${where} has no value for ${list} (named in the sql); ${fix}`, { details: { missing } });
  }
  return names.map((name) => (Object.hasOwn(ferry, name) ? ferry[name as keyof FerryParameters] : parameterValue(row[name])));
};

const rowsLabel = (count: number): string => `${count} row${count === 1 ? '' : 's'}`;

export const postgresDestination = (config: PostgresDestinationConfig, deps: { logger: Logger; channel: string }): Destination => {
  const log = deps.logger.child({ destination: config.name });
  const statement = compileNamedSql(config.sql);
  const target = describeTarget(config.url);
  const pool = new Pool({
    connectionString: config.url,
    max: config.pool.max,
    connectionTimeoutMillis: config.timeoutMs,
    statement_timeout: config.timeoutMs,
    query_timeout: config.timeoutMs + CLIENT_TIMEOUT_GRACE_MS,
    keepAlive: true,
    application_name: `ferry ${deps.channel}/${config.name}`.slice(0, 63),
  });
  // A connection that dies while idle is reported here, and one that dies while checked out on
  // the client itself; without a listener either would crash the engine. The delivery that uses
  // a dead connection gets the error from its query.
  pool.on('error', (error) => log.warn({ err: error }, `PostgreSQL at ${target}: idle connection failed: ${error.message}`));
  pool.on('connect', (client) => client.on('error', () => undefined));
  let closed: Promise<void> | undefined;

  /** Runs the statements (in one transaction when there are several); the client is kept only when it is known healthy. */
  const execute = async (rows: Parameter[][]): Promise<QueryResult[]> => {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw classifyPostgresError(error, target);
    }
    const batch = rows.length > 1;
    const results: QueryResult[] = [];
    try {
      if (batch) await client.query('BEGIN');
      for (const values of rows) results.push(await client.query({ text: statement.text, values }));
      if (batch) await client.query('COMMIT');
    } catch (error) {
      const failure = classifyPostgresError(error, target);
      // The server refused the statement over a live connection: roll back and keep it. Anything
      // else may have left the connection broken or mid-query: drop it.
      let healthy = error instanceof DatabaseError && failure.permanent;
      if (healthy && batch) healthy = await client.query('ROLLBACK').then(() => true, () => false);
      client.release(healthy ? undefined : true);
      throw failure;
    }
    client.release();
    return results;
  };

  return {
    async send(delivery: Delivery) {
      if (closed) throw new FerryError('ENGINE_SHUTTING_DOWN', `destination ${config.name} is closed`);
      const id = deliveryMessageId(delivery);
      // Everything up to the statement depends on the output alone: any failure is permanent.
      const values = building('the statement parameters', () => {
        const rows = rowsOf(decodeAs(delivery.content, delivery.charset ?? ''));
        return rows.map((row, index) => {
          const where = rows.length > 1 ? `element ${index} of the output` : 'the output';
          return parameterValues(statement.names, row, { ferry_id: id, ferry_channel: delivery.channel, ferry_row: index }, where);
        });
      });
      if (values.length === 0) return 'nothing written: the output is an empty array';
      let results: QueryResult[];
      try {
        results = await execute(values);
      } catch (error) {
        const failure = error as FerryError;
        if (failure.code === 'POSTGRES_REJECTED') {
          log.error(
            { alert: true, code: failure.code, id: delivery.id, output: delivery.output, ...failure.details },
            `ALERT: PostgreSQL at ${target} refused message ${delivery.id}; it will not be retried: ${failure.message}`,
          );
        }
        throw failure;
      }
      const command = results[0]?.command ?? 'statement';
      const affected = results.reduce((sum, result) => sum + (result.rowCount ?? 0), 0);
      return results.length === 1
        ? `${command} ${rowsLabel(affected)} (${target})`
        : `${results.length} statements in one transaction, ${command} ${rowsLabel(affected)} (${target})`;
    },

    close() {
      closed ??= pool.end();
      return closed;
    },
  };
};

export const postgresDestinationConnector: DestinationConnector<typeof schema, PostgresDestinationConfig> = {
  type: 'postgres',
  schema,
  // The URL and the SQL, so that `ferry check` catches them before the first message does.
  check(raw, { fail }) {
    const url = raw['url'];
    if (typeof url === 'string' && /^postgres(?:ql)?:\/\//.test(url) && !URL.canParse(url)) {
      fail(['url'], 'not a valid URL (percent-encode @, : and / in the user name or password)');
    }
    const sql = raw['sql'];
    if (typeof sql !== 'string' || sql === '') return;
    try {
      compileNamedSql(sql);
    } catch (error) {
      fail(['sql'], (error as Error).message.replace(/^sql: /, ''));
    }
  },
  normalize: (raw) => ({
    type: 'postgres',
    url: raw.url,
    sql: raw.sql,
    pool: { max: raw.pool?.max ?? defaults.pool.max },
    timeoutMs: durationMs(raw.timeout ?? defaults.timeout),
  }),
  create: postgresDestination,
};
