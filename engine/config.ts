// channels.yaml → typed, validated config. The only YAML reader in the engine: nothing past this
// file sees raw YAML, relative paths or unparsed durations and sizes.
//
// (The types are the contract the rest of the engine codes against; the loader follows them.)

import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Scalar } from 'yaml';
import { FerryError, type ErrorCode } from './errors.ts';
import {
  configDefaults as defaults,
  configSchema,
  durationMs,
  isDuration,
  isSize,
  minScriptMemoryBytes,
  sizeBytes,
  type RawConfig,
} from './config-schema.ts';
import { compileNamedSql } from './destinations/named-sql.ts';
import { decodeAs } from './hl7/charset.ts';
import { fileNamePattern } from './sources/file-pattern.ts';
import { parseAddressRule } from './wire/address-rules.ts';
import { isHeaderName, isHeaderValue, isReservedHeader } from './wire/headers.ts';

export interface RetryPolicy {
  /** Total tries including the first; 0 = retry forever. */
  attempts: number;
  backoff: 'exponential' | 'fixed';
  delayMs: number;
  maxDelayMs: number;
}

export interface MllpSourceConfig {
  type: 'mllp';
  host: string;
  port: number;
  maxFrameBytes: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** MLLP over TLS; absolute paths of PEM files. */
  tls?: MllpListenerTls;
}

export interface MllpListenerTls {
  cert: string;
  key: string;
  ca: string | undefined;
  clientCert: 'none' | 'require';
}

export interface ChannelSourceConfig {
  type: 'channel';
}

export type HttpsAuth = 'token' | 'hmac' | 'mtls' | 'none';

export interface HttpsSourceConfig {
  type: 'https';
  /** URL path on the engine HTTPS listener, e.g. /in/adt. */
  path: string;
  maxBodyBytes: number;
  /** Addresses and CIDR ranges admitted; empty = any. */
  allowIps: string[];
  requireTls: boolean;
  auth: HttpsAuth;
  rateLimit: { requests: number; perMs: number } | undefined;
}

/** An https source whose body must be a push {"topic", "args", "kwargs"}: same keys, token or hmac auth. */
export interface PusherSourceConfig extends Omit<HttpsSourceConfig, 'type' | 'auth'> {
  type: 'pusher';
  auth: 'token' | 'hmac';
}

export interface FileSourceConfig {
  type: 'file';
  /** Absolute: the folder watched (not its subfolders). */
  dir: string;
  /** Glob on the file name: * ? [abc] {hl7,txt}. */
  pattern: string;
  pollIntervalMs: number;
  after: 'move' | 'delete';
  /** Absolute; used with after: move. */
  processedDir: string;
  /** Absolute; where unreadable files go, each with a <name>.error.txt. */
  errorDir: string;
  /** 'auto' (each message's MSH-18, as over MLLP) or a character set name that overrides it. */
  encoding: string;
  /** Larger files are not read but moved to errorDir (FILE_TOO_LARGE). */
  maxFileBytes: number;
}

export type SourceConfig = MllpSourceConfig | ChannelSourceConfig | HttpsSourceConfig | FileSourceConfig | PusherSourceConfig;

interface DestinationCommon {
  name: string;
  order: 'fifo' | 'parallel';
  retry: RetryPolicy;
}

export interface FileDestinationConfig extends DestinationCommon {
  type: 'file';
  /** Absolute. */
  dir: string;
  /** Tokens: {id} {channel} {destination} {index} {controlId} {date} {time}; default "{id}". */
  filename: string;
  /** A name taken by a file with other content: write name-<message id> (default), fail, or replace it. */
  onExists: 'suffix' | 'error' | 'overwrite';
}

export interface ChannelDestinationConfig extends DestinationCommon {
  type: 'channel';
  channel: string;
}

export interface HttpsDestinationConfig extends DestinationCommon {
  type: 'https';
  url: string;
  token: string | undefined;
  hmac: { keyId: string; secret: string } | undefined;
  /** Absolute paths of PEM files. */
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
  timeoutMs: number;
  headers: Record<string, string>;
  /** URL prefixes a script's ctx.deliver(…, { url }) may use; empty = dynamic URLs refused. */
  allowDynamicUrl: string[];
  circuitBreaker: { failures: number; cooldownMs: number };
}

export interface PostgresDestinationConfig extends DestinationCommon {
  type: 'postgres';
  /** postgres:// or postgresql:// URL, password included (the admin API redacts it). */
  url: string;
  /** One statement with :name parameters; compiled by destinations/named-sql.ts. */
  sql: string;
  pool: { max: number };
  /** Connecting, and each statement (statement_timeout). */
  timeoutMs: number;
}

export interface MllpDestinationConfig extends DestinationCommon {
  type: 'mllp';
  host: string;
  port: number;
  /** MLLP over TLS (always verified); absolute paths of PEM files. */
  tls: { ca: string | undefined; cert: string | undefined; key: string | undefined; servername: string | undefined } | undefined;
  ackTimeoutMs: number;
}

export interface WebSocketDestinationConfig extends DestinationCommon {
  type: 'websocket';
  /** The topic of every output; undefined: each output is a push envelope naming its topic. */
  topic: string | undefined;
}

export type DestinationConfig =
  | FileDestinationConfig
  | ChannelDestinationConfig
  | HttpsDestinationConfig
  | PostgresDestinationConfig
  | MllpDestinationConfig
  | WebSocketDestinationConfig;

export interface ChannelConfig {
  name: string;
  source: SourceConfig;
  /** Absolute path of the translator script, or undefined for a pass-through channel. */
  script: string | undefined;
  /** maxOutputs: outputs one message may produce (returned and ctx.deliver together). */
  scriptLimits: { memoryBytes: number; timeoutMs: number; maxOutputs: number };
  /** Parallel translator jobs for this channel; 1 keeps order. */
  concurrency: number;
  /** Unfinished messages the channel may hold before intake refuses with QUEUE_FULL. */
  maxQueued: number;
  /** Duplicate suppression by sender + MSH-10 within this window; undefined = off. */
  dedupe: { windowMs: number } | undefined;
  destinations: DestinationConfig[];
}

export interface HttpsListenerConfig {
  host: string;
  port: number;
  /** Plain HTTP, no TLS: only when configured explicitly. */
  plain: boolean;
  /** Absolute paths of PEM files; cert and key are set unless plain. */
  cert: string | undefined;
  key: string | undefined;
  ca: string | undefined;
  clientCert: 'none' | 'request' | 'require';
}

export interface WebSocketConfig {
  /** URL path of the endpoint on the HTTPS listener. */
  path: string;
  replay: { size: number; ttlMs: number; maxBytes: number };
  /** Unsent bytes a connection may hold before it is disconnected as too slow. */
  sendBufferBytes: number;
  maxConnections: number;
  /** Addresses and CIDR ranges admitted; empty = any. */
  allowIps: string[];
}

export interface EngineConfig {
  redis: { mode: 'embedded' } | { mode: 'url'; url: string };
  /** Absolute data folder: message log, embedded Redis files. */
  data: string;
  /** With `tls` (absolute PEM paths) the admin API and web UI are served over HTTPS. */
  admin: { host: string; port: number; tls?: { cert: string; key: string } };
  retentionMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  shutdownTimeoutMs: number;
  /** How long intake waits for Redis before refusing (AE / 503) rather than holding the sender. */
  commitTimeoutMs: number;
  /** Absolute path of the admin users file (`ferry user` writes it; it may not exist). */
  users: string;
  /** Absolute path of the tokens file for https sources (`ferry token` writes it; it may not exist). */
  tokens: string;
  /** The HTTPS listener for https sources; absent when not configured. */
  https?: HttpsListenerConfig;
  /** WebSocket push on the HTTPS listener; absent when not configured. */
  websocket?: WebSocketConfig;
}

export interface FerryConfig {
  /** Absolute path of the config file and its folder (relative paths resolve against `dir`). */
  file: string;
  dir: string;
  engine: EngineConfig;
  channels: ChannelConfig[];
}

// ---------------------------------------------------------------------------------------------
// Loader: parse (keeping positions) → interpolate ${ENV} → validate against config-schema.ts →
// check what a schema cannot (names, hand-offs, ports, scripts) → normalize. Every problem is
// collected with file:line:column and key path, and all of them are thrown together.

/** One problem in the config file; FerryError details.errors holds a list of these. */
export interface ConfigProblem {
  code: ErrorCode;
  file: string;
  line: number;
  column: number;
  /** Key path such as `channels[0].destinations[1].type`; empty for the whole file. */
  path: string;
  message: string;
}

type Segment = string | number;

/** The parts of JSON Schema this file reads back from config-schema.ts. */
interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  const?: unknown;
  errorMessage?: string;
  patternErrorMessage?: string;
}

const ajv = new Ajv({ allErrors: true, verbose: true, discriminator: true });
// Annotations for editors (VS Code's JSON-schema extensions); this file reads them for its messages.
ajv.addVocabulary(['errorMessage', 'patternErrorMessage']);
const validateSchema = ajv.compile<RawConfig>(configSchema);

/** Reads, validates and normalizes a channels.yaml. Throws FerryError (CONFIG_*, SCRIPT_NOT_FOUND). */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<FerryConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const message = code === 'ENOENT' ? `config file ${file} does not exist` : `cannot read config file ${file} (${code})`;
    throw new FerryError('CONFIG_NOT_FOUND', message, { cause, details: { file } });
  }
  return parseConfig(text, file, env);
}

/**
 * The loader minus the read: `file` names the text in messages and anchors relative paths. Still
 * looks at the file system for translator scripts (default detection, SCRIPT_NOT_FOUND).
 */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): FerryConfig {
  const absolute = path.resolve(file);
  const dir = path.dirname(absolute);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const source: Source = { file, doc, lineCounter, problems: [] };

  // Only the first syntax error: after one mistake the parser's later complaints are mostly echoes.
  const syntaxError = doc.errors[0];
  if (syntaxError) {
    // `port: ${PORT}` inside `{ }` reads as a nested flow mapping; point at the `$` and say why.
    const unquoted = text.startsWith('${', syntaxError.pos[0] - 1);
    const { line, col } = lineCounter.linePos(syntaxError.pos[0] - (unquoted ? 1 : 0));
    const hint = unquoted ? ' (inside { } or [ ] a ${VAR} must be quoted: "${VAR}")' : '';
    source.problems.push({ code: 'CONFIG_SYNTAX', file, line, column: col, path: '', message: syntaxError.message + hint });
  }
  throwProblems(source);

  const interpolated = interpolate(source, env);
  throwProblems(source);
  coerceInterpolated(doc.contents, configSchema as SchemaNode, interpolated);

  const data: unknown = doc.toJS();
  if (doc.contents === null) report(source, 'CONFIG_INVALID', [], 'the file is empty; it needs at least a channels: list');
  else if (!validateSchema(data)) for (const error of relevantErrors(validateSchema.errors ?? [])) reportSchemaError(source, error);
  checkConsistency(source, data, dir);
  throwProblems(source);

  return normalize(data as RawConfig, absolute, dir);
}

interface Source {
  file: string;
  doc: Document;
  lineCounter: LineCounter;
  problems: ConfigProblem[];
}

const report = (source: Source, code: ErrorCode, at: Segment[], message: string, { key = false } = {}): void => {
  const offset = locate(source.doc, at, key)?.range?.[0] ?? 0;
  const { line, col } = source.lineCounter.linePos(offset);
  source.problems.push({ code, file: source.file, line, column: col, path: keyPath(at), message });
};

const formatConfigProblem = (p: ConfigProblem): string =>
  `${p.file}:${p.line}:${p.column} ${p.path ? `${p.path}: ` : ''}${p.message}`;

/** Throws every collected problem at once: under their shared code, or CONFIG_INVALID when they differ. */
function throwProblems(source: Source): void {
  const { problems } = source;
  if (problems.length === 0) return;
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  const codes = new Set(problems.map((p) => p.code));
  const code = codes.size === 1 ? problems[0]!.code : 'CONFIG_INVALID';
  throw new FerryError(code, problems.map(formatConfigProblem).join('\n'), {
    details: { file: source.file, errors: problems },
  });
}

const keyPath = (at: Segment[]): string =>
  at.reduce<string>((s, seg) => (typeof seg === 'number' ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');

/** The node at a key path (or the key itself), else the nearest ancestor that exists, for its position. */
function locate(doc: Document, at: Segment[], key: boolean): { range?: [number, number, number] | null } | null {
  let node: unknown = doc.contents;
  let found = doc.contents as { range?: [number, number, number] | null } | null;
  for (const [i, seg] of at.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair || !isScalar(pair.key)) break;
      // An empty value (`port:`) has no node of its own; its key marks the spot.
      if ((key && i === at.length - 1) || pair.value === null) return pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
      node = node.items[seg];
    } else {
      break;
    }
    found = node as typeof found;
  }
  return found;
}

/** Visits every scalar value (not keys) with its key path; aliases are visited at their anchor. */
function forEachScalar(node: unknown, at: Segment[], visit: (scalar: Scalar, at: Segment[]) => void): void {
  if (isMap(node)) {
    for (const pair of node.items) if (isScalar(pair.key)) forEachScalar(pair.value, [...at, String(pair.key.value)], visit);
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => forEachScalar(item, [...at, i], visit));
  } else if (isScalar(node)) {
    visit(node, at);
  }
}

const envReference = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` / `${VAR:-default}` in every string value (`$${` stays a literal `${`); a set
 * but empty VAR takes the default, as in the shell. Returns the scalars that took a value.
 */
function interpolate(source: Source, env: NodeJS.ProcessEnv): Set<Scalar> {
  const interpolated = new Set<Scalar>();
  forEachScalar(source.doc.contents, [], (scalar, at) => {
    if (typeof scalar.value !== 'string' || !scalar.value.includes('${')) return;
    scalar.value = scalar.value.replace(envReference, (match, name: string | undefined, fallback: string | undefined) => {
      if (name === undefined) return '${';
      const value = env[name];
      interpolated.add(scalar);
      if (fallback !== undefined && !value) return fallback;
      if (value !== undefined) return value;
      report(source, 'CONFIG_ENV_MISSING', at, `environment variable ${name} is not set (give a default with \${${name}:-value})`);
      return match;
    });
  });
  return interpolated;
}

const acceptsInteger = (schema: SchemaNode): boolean =>
  schema.type === 'integer' || (schema.anyOf ?? []).some(acceptsInteger);

/**
 * `port: ${PORT}` is a string to YAML. Where the schema takes an integer (ports, counts, durations
 * and sizes in plain numbers), an interpolated all-digits value becomes a number; everything the
 * user typed literally is validated as typed, so `port: "6661"` stays an error.
 */
function coerceInterpolated(node: unknown, schema: SchemaNode, interpolated: Set<Scalar>): void {
  if (isMap(node)) {
    const branch = schema.oneOf ? schema.oneOf.find((b) => b.properties?.['type']?.const === node.get('type')) : schema;
    for (const pair of node.items) {
      const property = isScalar(pair.key) ? branch?.properties?.[String(pair.key.value)] : undefined;
      if (property) coerceInterpolated(pair.value, property, interpolated);
    }
  } else if (isSeq(node)) {
    if (schema.items) for (const item of node.items) coerceInterpolated(item, schema.items, interpolated);
  } else if (isScalar(node) && interpolated.has(node) && typeof node.value === 'string') {
    if (/^-?\d+$/.test(node.value) && acceptsInteger(schema)) node.value = Number(node.value);
  }
}

/**
 * ajv with allErrors reports every failed branch of a union and every keyword at a wrong-typed
 * value. Keep one error per mistake: the union's own error instead of its branches', and only the
 * type error where the type is wrong.
 */
function relevantErrors(errors: ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  const kept = errors.filter(
    (e) => !unions.some((u) => u.instancePath === e.instancePath && e.schemaPath.startsWith(`${u.schemaPath}/`)),
  );
  const wrongType = new Set(kept.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  return kept.filter((e) => e.keyword === 'type' || !wrongType.has(e.instancePath));
}

const describe = (value: unknown): string => {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return JSON.stringify(value);
};

const typeNames: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
};

function reportSchemaError(source: Source, error: ErrorObject): void {
  const at: Segment[] = error.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const parent = (error.parentSchema ?? {}) as SchemaNode;
  const got = `(got ${describe(error.data)})`;
  const params = error.params as Record<string, unknown>;
  const fail = (message: string, where = at, key = false) => report(source, 'CONFIG_INVALID', where, message, { key });
  switch (error.keyword) {
    case 'type':
      return fail(`must be ${typeNames[String(params['type'])] ?? params['type']} ${got}`);
    case 'required':
      return fail(`missing required key "${params['missingProperty']}"`);
    case 'additionalProperties': {
      const name = String(params['additionalProperty']);
      return fail(`unknown key "${name}"${didYouMean(name, Object.keys(parent.properties ?? {}))}`, [...at, name], true);
    }
    case 'discriminator': {
      const tags = (parent.oneOf ?? []).map((b) => b.properties?.['type']?.const).join(', ');
      if (params['tagValue'] === undefined) return fail(`missing required key "type" (one of ${tags})`);
      return fail(`must be one of ${tags} (got ${describe(params['tagValue'])})`, [...at, 'type']);
    }
    case 'enum':
      return fail(`must be one of ${(params['allowedValues'] as unknown[]).join(', ')} ${got}`);
    case 'pattern':
      return fail(`${parent.patternErrorMessage ?? `must match ${params['pattern']}`} ${got}`);
    case 'anyOf':
      return fail(`${parent.errorMessage ?? 'is not a valid value'} ${got}`);
    case 'minimum':
      return fail(`must be at least ${params['limit']} ${got}`);
    case 'maximum':
      return fail(`must be at most ${params['limit']} ${got}`);
    case 'minLength':
    case 'minItems':
      return fail('must not be empty');
    default:
      return fail(`${error.message ?? 'is not valid'} ${got}`);
  }
}

const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
};

const didYouMean = (word: string, candidates: string[]): string => {
  const best = candidates
    .map((c) => ({ c, d: distance(word.toLowerCase(), c.toLowerCase()) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.floor(word.length / 3) ? ` (did you mean "${best.c}"?)` : '';
};

type Entry = Record<string, unknown>;

const isEntry = (value: unknown): value is Entry => typeof value === 'object' && value !== null && !Array.isArray(value);
const entry = (value: unknown): Entry => (isEntry(value) ? value : {});
/** The mappings of a list with their indexes; anything else is the schema's to report. */
const entries = (value: unknown): Array<[number, Entry]> =>
  Array.isArray(value) ? [...value.entries()].filter((e): e is [number, Entry] => isEntry(e[1])) : [];

const isFile = (file: string): boolean => statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;

/**
 * What the schema cannot say. Runs even when the schema failed, so all problems come out together;
 * hence it reads the raw data defensively and skips what the schema already reports.
 */
function checkConsistency(source: Source, data: unknown, dir: string): void {
  const fail = (at: Segment[], message: string) => report(source, 'CONFIG_INVALID', at, message);
  const lineOf = (at: Segment[]) => source.lineCounter.linePos(locate(source.doc, at, false)?.range?.[0] ?? 0).line;
  const root = entry(data);
  const channels = entries(root['channels']);

  const byName = new Map<string, [number, Entry]>();
  for (const [i, channel] of channels) {
    const name = channel['name'];
    if (typeof name !== 'string') continue;
    const first = byName.get(name);
    if (first) fail(['channels', i, 'name'], `duplicate channel name "${name}" (first at line ${lineOf(['channels', first[0]])})`);
    else byName.set(name, [i, channel]);
  }

  const handOffs = new Map<string, Array<{ to: string; at: Segment[] }>>();
  for (const [i, channel] of channels) {
    const destinations = entries(channel['destinations']);
    const firstLines = new Map<string, number>();
    for (const [j, destination] of destinations) {
      const at = ['channels', i, 'destinations', j];
      const name = destination['name'];
      if (typeof name === 'string') {
        const first = firstLines.get(name);
        if (first === undefined) firstLines.set(name, lineOf(at));
        else fail([...at, 'name'], `duplicate destination name "${name}" in this channel (first at line ${first})`);
      }
      const target = destination['channel'];
      if (destination['type'] !== 'channel' || typeof target !== 'string') continue;
      const found = byName.get(target);
      if (!found) {
        fail([...at, 'channel'], `no channel named "${target}" in this file${didYouMean(target, [...byName.keys()])}`);
      } else if (entry(found[1]['source'])['type'] !== 'channel') {
        fail([...at, 'channel'], `channel "${target}" does not take hand-offs: its source must be { type: channel }`);
      } else if (typeof channel['name'] === 'string') {
        const list = handOffs.get(channel['name']) ?? [];
        list.push({ to: target, at: [...at, 'channel'] });
        handOffs.set(channel['name'], list);
      }
    }
    const memory = entry(channel['scriptLimits'])['memory'];
    if (isSize(memory) && sizeBytes(memory) < minScriptMemoryBytes) {
      const minimum = `${minScriptMemoryBytes / 1024 ** 2}MB`;
      fail(['channels', i, 'scriptLimits', 'memory'], `must be at least ${minimum} (got ${describe(memory)})`);
    }
    const script = channel['script'];
    if (typeof script === 'string' && script !== '' && !isFile(path.resolve(dir, script))) {
      report(source, 'SCRIPT_NOT_FOUND', ['channels', i, 'script'], `script not found: ${path.resolve(dir, script)}`);
    }
  }

  // Depth-first over hand-offs; an edge back onto the current path closes a cycle, reported once
  // at the hand-off that closes it.
  const trail: string[] = [];
  const done = new Set<string>();
  const walk = (name: string): void => {
    trail.push(name);
    for (const edge of handOffs.get(name) ?? []) {
      const start = trail.indexOf(edge.to);
      if (start >= 0) fail(edge.at, `hand-off cycle ${[...trail.slice(start), edge.to].join(' → ')}`);
      else if (!done.has(edge.to)) walk(edge.to);
    }
    trail.pop();
    done.add(name);
  };
  for (const name of handOffs.keys()) if (!done.has(name)) walk(name);

  checkPorts(source, root, channels);
  checkHttps(source, root, channels, dir);
  checkWebSocket(source, root, channels);
  checkPostgres(source, channels);
  checkFileSources(source, channels, dir);
  checkMllpDestinations(source, channels, dir);
  checkMllpSources(source, channels, dir);
  checkAdminTls(source, root, dir);
}

/** The admin listener's certificate: both halves, on disk. */
function checkAdminTls(source: Source, root: Entry, dir: string): void {
  const admin = entry(entry(root['engine'])['admin']);
  const at = ['engine', 'admin'];
  if ((admin['cert'] === undefined) !== (admin['key'] === undefined)) {
    report(source, 'CONFIG_INVALID', [...at, admin['cert'] === undefined ? 'key' : 'cert'], 'HTTPS for the admin API needs both cert and key');
  }
  for (const key of ['cert', 'key']) {
    const file = admin[key];
    if (typeof file === 'string' && file !== '' && !isFile(path.resolve(dir, file))) {
      report(source, 'CONFIG_INVALID', [...at, key], `file not found: ${path.resolve(dir, file)}`);
    }
  }
}

/** The HTTPS listener, https sources and https destinations: what must go together. */
function checkHttps(source: Source, root: Entry, channels: Array<[number, Entry]>, dir: string): void {
  const fail = (at: Segment[], message: string) => report(source, 'CONFIG_INVALID', at, message);
  const missingFile = (value: unknown, at: Segment[]): void => {
    if (typeof value === 'string' && value !== '' && !isFile(path.resolve(dir, value))) fail(at, `file not found: ${path.resolve(dir, value)}`);
  };
  const httpsEntry = entry(root['engine'])['https'];
  const listener = isEntry(httpsEntry) ? httpsEntry : undefined;
  const plain = listener?.['plain'] === true;
  const clientCert = listener?.['clientCert'] ?? defaults.https.clientCert;
  if (listener) {
    const at = ['engine', 'https'];
    if (!plain && (listener['cert'] === undefined || listener['key'] === undefined)) {
      fail(at, 'needs cert and key (make them with `ferry certs init`), or plain: true for plain HTTP');
    }
    if (clientCert !== 'none' && plain) fail([...at, 'clientCert'], 'client certificates need TLS; remove plain: true');
    else if (clientCert !== 'none' && listener['ca'] === undefined) fail([...at, 'clientCert'], 'needs ca: the CA client certificates must chain to');
    for (const key of ['cert', 'key', 'ca']) missingFile(listener[key], [...at, key]);
  }

  const paths = new Map<string, unknown>();
  for (const [i, channel] of channels) {
    const src = entry(channel['source']);
    const at = ['channels', i, 'source'];
    if (src['type'] === 'https' || src['type'] === 'pusher') {
      if (!listener) fail(at, `a${src['type'] === 'https' ? 'n https' : ' pusher'} source needs the engine HTTPS listener: add engine.https: { port, cert, key }`);
      const urlPath = src['path'];
      if (typeof urlPath === 'string') {
        if (!paths.has(urlPath)) paths.set(urlPath, channel['name']);
        else fail([...at, 'path'], `path ${urlPath} is already used by channel "${String(paths.get(urlPath))}"`);
      }
      if (listener && plain && src['requireTls'] !== false) {
        fail([...at, 'requireTls'], 'the HTTPS listener is plain HTTP (engine.https.plain: true); set requireTls: false to receive without TLS');
      }
      if (src['auth'] === 'mtls' && listener && (plain || clientCert === 'none')) {
        fail([...at, 'auth'], 'mtls needs client certificates: set engine.https.clientCert to request or require (with ca)');
      }
      const allowIps = src['allowIps'];
      if (Array.isArray(allowIps)) {
        allowIps.forEach((rule, j) => {
          const parsed = typeof rule === 'string' ? parseAddressRule(rule) : undefined;
          if (typeof parsed === 'string') fail([...at, 'allowIps', j], parsed);
        });
      }
    }
    for (const [j, destination] of entries(channel['destinations'])) {
      if (destination['type'] !== 'https') continue;
      const dat = ['channels', i, 'destinations', j];
      const url = destination['url'];
      if (typeof url === 'string' && !URL.canParse(url)) fail([...dat, 'url'], `not a valid URL: ${url}`);
      if (typeof url === 'string' && url.startsWith('http://') && destination['token'] !== undefined) {
        fail([...dat, 'token'], 'a token must not travel over plain http://; use an https:// URL (or hmac)');
      }
      if (destination['token'] !== undefined && destination['hmac'] !== undefined) fail([...dat, 'hmac'], 'use token or hmac, not both');
      if ((destination['cert'] === undefined) !== (destination['key'] === undefined)) {
        fail([...dat, destination['cert'] === undefined ? 'key' : 'cert'], 'a client certificate needs both cert and key');
      }
      for (const key of ['ca', 'cert', 'key']) missingFile(destination[key], [...dat, key]);
      for (const [name, value] of Object.entries(entry(destination['headers']))) {
        if (!isHeaderName(name)) fail([...dat, 'headers', name], `"${name}" is not a valid header name`);
        else if (isReservedHeader(name)) fail([...dat, 'headers', name], `${name} is set by Ferry and cannot be configured`);
        else if (typeof value === 'string' && !isHeaderValue(value)) fail([...dat, 'headers', name], 'a header value may hold tab, printable ASCII and Latin-1 characters, no line breaks or other control characters');
      }
    }
  }
}

/** WebSocket push: the endpoint lives on the HTTPS listener, on a path of its own, and destinations need it. */
function checkWebSocket(source: Source, root: Entry, channels: Array<[number, Entry]>): void {
  const fail = (at: Segment[], message: string) => report(source, 'CONFIG_INVALID', at, message);
  const engine = entry(root['engine']);
  const websocket = isEntry(engine['websocket']) ? engine['websocket'] : undefined;
  if (websocket) {
    const at = ['engine', 'websocket'];
    if (!isEntry(engine['https'])) fail(at, 'WebSocket push runs on the engine HTTPS listener: add engine.https: { port, cert, key }');
    const wsPath = websocket['path'] ?? defaults.websocket.path;
    for (const [, channel] of channels) {
      const src = entry(channel['source']);
      if ((src['type'] === 'https' || src['type'] === 'pusher') && src['path'] === wsPath) {
        fail(websocket['path'] === undefined ? at : [...at, 'path'], `path ${String(wsPath)} is already used by channel "${String(channel['name'])}"`);
      }
    }
    const allowIps = websocket['allowIps'];
    if (Array.isArray(allowIps)) {
      allowIps.forEach((rule, j) => {
        const parsed = typeof rule === 'string' ? parseAddressRule(rule) : undefined;
        if (typeof parsed === 'string') fail([...at, 'allowIps', j], parsed);
      });
    }
  }
  for (const [i, channel] of channels) {
    for (const [j, destination] of entries(channel['destinations'])) {
      if (destination['type'] === 'websocket' && !websocket) {
        fail(['channels', i, 'destinations', j], 'a websocket destination needs engine.websocket (which needs engine.https)');
      }
    }
  }
}

/** A postgres destination's URL and SQL, so `ferry check` catches them before the first message does. */
function checkPostgres(source: Source, channels: Array<[number, Entry]>): void {
  for (const [i, channel] of channels) {
    for (const [j, destination] of entries(channel['destinations'])) {
      if (destination['type'] !== 'postgres') continue;
      const at = ['channels', i, 'destinations', j];
      const url = destination['url'];
      if (typeof url === 'string' && /^postgres(?:ql)?:\/\//.test(url) && !URL.canParse(url)) {
        report(source, 'CONFIG_INVALID', [...at, 'url'], 'not a valid URL (percent-encode @, : and / in the user name or password)');
      }
      const sql = destination['sql'];
      if (typeof sql !== 'string' || sql === '') continue;
      try {
        compileNamedSql(sql);
      } catch (error) {
        report(source, 'CONFIG_INVALID', [...at, 'sql'], (error as Error).message.replace(/^sql: /, ''));
      }
    }
  }
}

/** A poll faster than this lists the folder in a busy loop. */
const minPollIntervalMs = 10;

/**
 * File sources: each folder watched by one source only, and no source's processed or error folder
 * watched (by itself or another), or files moved there would be read again.
 */
function checkFileSources(source: Source, channels: Array<[number, Entry]>, dir: string): void {
  const fail = (at: Segment[], message: string) => report(source, 'CONFIG_INVALID', at, message);
  const watched = new Map<string, string>();
  const found: Array<{ src: Entry; at: Segment[]; watchedDir: string }> = [];
  for (const [i, channel] of channels) {
    const src = entry(channel['source']);
    if (src['type'] !== 'file' || typeof src['dir'] !== 'string' || src['dir'] === '') continue;
    const at = ['channels', i, 'source'];
    const watchedDir = path.resolve(dir, src['dir']);
    const first = watched.get(watchedDir);
    if (first === undefined) watched.set(watchedDir, String(channel['name']));
    else fail([...at, 'dir'], `${watchedDir} is already watched by channel "${first}"; two sources would race for its files`);
    found.push({ src, at, watchedDir });
  }
  for (const { src, at, watchedDir } of found) {
    if (src['after'] === 'delete' && src['processedDir'] !== undefined) fail([...at, 'processedDir'], 'is only used with after: move');
    for (const key of ['processedDir', 'errorDir']) {
      const value = src[key];
      if (typeof value !== 'string' || value === '') continue;
      const target = path.resolve(dir, value);
      const reader = watched.get(target);
      if (target === watchedDir) fail([...at, key], 'must not be the watched folder itself: files moved there would be read again');
      else if (reader !== undefined) fail([...at, key], `${target} is watched by channel "${reader}": files moved there would be read again`);
    }
    const pattern = src['pattern'];
    if (typeof pattern === 'string' && pattern !== '') {
      try {
        fileNamePattern(pattern);
      } catch (error) {
        fail([...at, 'pattern'], (error as Error).message.replace(/^pattern "(?:[^"\\]|\\.)*" /, ''));
      }
    }
    const encoding = src['encoding'];
    if (typeof encoding === 'string' && encoding !== 'auto') {
      try {
        decodeAs(new Uint8Array(0), encoding);
      } catch {
        fail([...at, 'encoding'], `unknown character set ${JSON.stringify(encoding)}: use auto or an MSH-18 name such as UNICODE UTF-8 or 8859/1`);
      }
    }
    const poll = src['pollInterval'];
    if (isDuration(poll) && durationMs(poll) < minPollIntervalMs) {
      fail([...at, 'pollInterval'], `must be at least ${minPollIntervalMs}ms (got ${describe(poll)})`);
    }
  }
}

/** MLLP destinations over TLS: a client certificate needs both halves, and the PEM files must exist. */
function checkMllpDestinations(source: Source, channels: Array<[number, Entry]>, dir: string): void {
  for (const [i, channel] of channels) {
    for (const [j, destination] of entries(channel['destinations'])) {
      if (destination['type'] !== 'mllp' || !isEntry(destination['tls'])) continue;
      const tls = destination['tls'];
      const at = ['channels', i, 'destinations', j, 'tls'];
      if ((tls['cert'] === undefined) !== (tls['key'] === undefined)) {
        report(source, 'CONFIG_INVALID', [...at, tls['cert'] === undefined ? 'key' : 'cert'], 'a client certificate needs both cert and key');
      }
      for (const key of ['ca', 'cert', 'key']) {
        const file = tls[key];
        if (typeof file === 'string' && file !== '' && !isFile(path.resolve(dir, file))) {
          report(source, 'CONFIG_INVALID', [...at, key], `file not found: ${path.resolve(dir, file)}`);
        }
      }
    }
  }
}

/** MLLP listeners over TLS: the PEM files must exist, and requiring client certificates needs a CA. */
function checkMllpSources(source: Source, channels: Array<[number, Entry]>, dir: string): void {
  for (const [i, channel] of channels) {
    const src = channel['source'];
    if (!isEntry(src) || src['type'] !== 'mllp' || !isEntry(src['tls'])) continue;
    const tls = src['tls'];
    const at = ['channels', i, 'source', 'tls'];
    for (const key of ['cert', 'key', 'ca']) {
      const file = tls[key];
      if (typeof file === 'string' && file !== '' && !isFile(path.resolve(dir, file))) {
        report(source, 'CONFIG_INVALID', [...at, key], `file not found: ${path.resolve(dir, file)}`);
      }
    }
    if (tls['clientCert'] === 'require' && tls['ca'] === undefined) {
      report(source, 'CONFIG_INVALID', [...at, 'clientCert'], 'require needs ca: the CA that client certificates must chain to');
    }
  }
}

const wildcardHosts = new Set(['0.0.0.0', '::', '']);
const canonicalHost = (host: string): string => (host === 'localhost' ? '127.0.0.1' : host);

/** Two listeners conflict on the same port when their hosts overlap; port 0 is always free. */
function checkPorts(source: Source, root: Entry, channels: Array<[number, Entry]>): void {
  interface Listener {
    host: string;
    port: unknown;
    at: Segment[];
    label: string;
  }
  const admin = entry(entry(root['engine'])['admin']);
  const listeners: Listener[] = [
    {
      host: String(admin['host'] ?? defaults.engine.admin.host),
      port: admin['port'] ?? defaults.engine.admin.port,
      at: ['engine', 'admin', 'port'],
      label: 'the admin API',
    },
  ];
  const https = entry(entry(root['engine'])['https']);
  if (https['port'] !== undefined) {
    listeners.push({ host: String(https['host'] ?? defaults.https.host), port: https['port'], at: ['engine', 'https', 'port'], label: 'the HTTPS listener' });
  }
  for (const [i, channel] of channels) {
    const sourceEntry = entry(channel['source']);
    if (sourceEntry['type'] !== 'mllp') continue;
    listeners.push({
      host: String(sourceEntry['host'] ?? defaults.mllp.host),
      port: sourceEntry['port'],
      at: ['channels', i, 'source', 'port'],
      label: `channel "${String(channel['name'])}"`,
    });
  }
  const bound = listeners.filter((l) => Number.isInteger(l.port) && l.port !== 0);
  for (const [j, later] of bound.entries()) {
    const earlier = bound
      .slice(0, j)
      .find(
        (e) =>
          e.port === later.port &&
          (wildcardHosts.has(e.host) || wildcardHosts.has(later.host) || canonicalHost(e.host) === canonicalHost(later.host)),
      );
    if (earlier) {
      const taken = `${later.host}:${later.port} is already taken by ${earlier.label} on ${earlier.host}:${earlier.port}`;
      report(source, 'CONFIG_INVALID', later.at, taken);
    }
  }
}

function normalize(raw: RawConfig, file: string, dir: string): FerryConfig {
  const engine = raw.engine ?? {};
  const redis = engine.redis ?? defaults.engine.redis;
  return {
    file,
    dir,
    engine: {
      redis: redis === 'embedded' ? { mode: 'embedded' } : { mode: 'url', url: redis },
      data: path.resolve(dir, engine.data ?? defaults.engine.data),
      admin: {
        host: engine.admin?.host ?? defaults.engine.admin.host,
        port: engine.admin?.port ?? defaults.engine.admin.port,
        ...(engine.admin?.cert !== undefined &&
          engine.admin.key !== undefined && { tls: { cert: path.resolve(dir, engine.admin.cert), key: path.resolve(dir, engine.admin.key) } }),
      },
      retentionMs: durationMs(engine.retention ?? defaults.engine.retention),
      logLevel: engine.logLevel ?? defaults.engine.logLevel,
      shutdownTimeoutMs: durationMs(engine.shutdownTimeout ?? defaults.engine.shutdownTimeout),
      commitTimeoutMs: durationMs(engine.commitTimeout ?? defaults.engine.commitTimeout),
      users: path.resolve(dir, engine.users ?? defaults.engine.users),
      tokens: path.resolve(dir, engine.tokens ?? defaults.engine.tokens),
      ...(engine.https && {
        https: {
          host: engine.https.host ?? defaults.https.host,
          port: engine.https.port,
          plain: engine.https.plain ?? defaults.https.plain,
          cert: resolveOptional(dir, engine.https.cert),
          key: resolveOptional(dir, engine.https.key),
          ca: resolveOptional(dir, engine.https.ca),
          clientCert: engine.https.clientCert ?? defaults.https.clientCert,
        },
      }),
      ...(engine.websocket && {
        websocket: {
          path: engine.websocket.path ?? defaults.websocket.path,
          replay: {
            size: engine.websocket.replay?.size ?? defaults.websocket.replay.size,
            ttlMs: durationMs(engine.websocket.replay?.ttl ?? defaults.websocket.replay.ttl),
            maxBytes: sizeBytes(engine.websocket.replay?.maxBytes ?? defaults.websocket.replay.maxBytes),
          },
          sendBufferBytes: sizeBytes(engine.websocket.sendBuffer ?? defaults.websocket.sendBuffer),
          maxConnections: engine.websocket.maxConnections ?? defaults.websocket.maxConnections,
          allowIps: engine.websocket.allowIps ?? [],
        },
      }),
    },
    channels: raw.channels.map((channel) => {
      const defaultScript = path.join(dir, 'channels', `${channel.name}.ts`);
      return {
        name: channel.name,
        source: normalizeSource(channel.source, dir),
        script: channel.script !== undefined ? path.resolve(dir, channel.script) : isFile(defaultScript) ? defaultScript : undefined,
        scriptLimits: {
          memoryBytes: sizeBytes(channel.scriptLimits?.memory ?? defaults.channel.scriptLimits.memory),
          timeoutMs: durationMs(channel.scriptLimits?.timeout ?? defaults.channel.scriptLimits.timeout),
          maxOutputs: channel.scriptLimits?.maxOutputs ?? defaults.channel.scriptLimits.maxOutputs,
        },
        concurrency: channel.concurrency ?? defaults.channel.concurrency,
        maxQueued: channel.maxQueued ?? defaults.channel.maxQueued,
        dedupe: channel.dedupe && { windowMs: durationMs(channel.dedupe.window) },
        destinations: channel.destinations.map((d) => normalizeDestination(d, dir)),
      };
    }),
  };
}

const resolveOptional = (dir: string, file: string | undefined): string | undefined =>
  file === undefined ? undefined : path.resolve(dir, file);

function normalizeSource(source: RawConfig['channels'][number]['source'], dir: string): SourceConfig {
  if (source.type === 'channel') return { type: 'channel' };
  if (source.type === 'file') {
    const watched = path.resolve(dir, source.dir);
    return {
      type: 'file',
      dir: watched,
      pattern: source.pattern ?? defaults.fileSource.pattern,
      pollIntervalMs: durationMs(source.pollInterval ?? defaults.fileSource.pollInterval),
      after: source.after ?? defaults.fileSource.after,
      processedDir: source.processedDir === undefined ? path.join(watched, 'processed') : path.resolve(dir, source.processedDir),
      errorDir: source.errorDir === undefined ? path.join(watched, 'error') : path.resolve(dir, source.errorDir),
      encoding: source.encoding ?? defaults.fileSource.encoding,
      maxFileBytes: sizeBytes(source.maxFileSize ?? defaults.fileSource.maxFileSize),
    };
  }
  if (source.type === 'pusher' || source.type === 'https') {
    // A pusher is an https receiver with a fixed body format: the same keys, the same defaults.
    const receiver = {
      path: source.path,
      maxBodyBytes: sizeBytes(source.maxBody ?? defaults.httpsSource.maxBody),
      allowIps: source.allowIps ?? [],
      requireTls: source.requireTls ?? defaults.httpsSource.requireTls,
      rateLimit: source.rateLimit && { requests: source.rateLimit.requests, perMs: durationMs(source.rateLimit.per) },
    };
    return source.type === 'pusher'
      ? { type: 'pusher', ...receiver, auth: source.auth }
      : { type: 'https', ...receiver, auth: source.auth };
  }
  return {
    type: 'mllp',
    host: source.host ?? defaults.mllp.host,
    port: source.port,
    maxFrameBytes: sizeBytes(source.maxFrameSize ?? defaults.mllp.maxFrameSize),
    idleTimeoutMs: durationMs(source.idleTimeout ?? defaults.mllp.idleTimeout),
    maxConnections: source.maxConnections ?? defaults.mllp.maxConnections,
    maxConnectionsPerAddress: source.maxConnectionsPerAddress ?? defaults.mllp.maxConnectionsPerAddress,
    ...(source.tls && {
      tls: {
        cert: path.resolve(dir, source.tls.cert),
        key: path.resolve(dir, source.tls.key),
        ca: resolveOptional(dir, source.tls.ca),
        clientCert: source.tls.clientCert ?? defaults.mllp.clientCert,
      },
    }),
  };
}

function normalizeDestination(destination: RawConfig['channels'][number]['destinations'][number], dir: string): DestinationConfig {
  const retry = destination.retry ?? {};
  const common = {
    name: destination.name,
    order: destination.order ?? defaults.destination.order,
    retry: {
      attempts: retry.attempts ?? defaults.destination.retry.attempts,
      backoff: retry.backoff ?? defaults.destination.retry.backoff,
      delayMs: durationMs(retry.delay ?? defaults.destination.retry.delay),
      maxDelayMs: durationMs(retry.maxDelay ?? defaults.destination.retry.maxDelay),
    },
  };
  if (destination.type === 'channel') return { ...common, type: 'channel', channel: destination.channel };
  if (destination.type === 'websocket') return { ...common, type: 'websocket', topic: destination.topic };
  if (destination.type === 'mllp') {
    const tls = destination.tls;
    return {
      ...common,
      type: 'mllp',
      host: destination.host,
      port: destination.port,
      tls: tls && {
        ca: resolveOptional(dir, tls.ca),
        cert: resolveOptional(dir, tls.cert),
        key: resolveOptional(dir, tls.key),
        servername: tls.servername,
      },
      ackTimeoutMs: durationMs(destination.ackTimeout ?? defaults.mllpDestination.ackTimeout),
    };
  }
  if (destination.type === 'postgres') {
    return {
      ...common,
      type: 'postgres',
      url: destination.url,
      sql: destination.sql,
      pool: { max: destination.pool?.max ?? defaults.postgres.pool.max },
      timeoutMs: durationMs(destination.timeout ?? defaults.postgres.timeout),
    };
  }
  if (destination.type === 'https') {
    const breaker = destination.circuitBreaker ?? {};
    return {
      ...common,
      type: 'https',
      url: destination.url,
      token: destination.token,
      hmac: destination.hmac,
      ca: resolveOptional(dir, destination.ca),
      cert: resolveOptional(dir, destination.cert),
      key: resolveOptional(dir, destination.key),
      timeoutMs: durationMs(destination.timeout ?? defaults.httpsDestination.timeout),
      headers: destination.headers ?? {},
      allowDynamicUrl: destination.allowDynamicUrl ?? [],
      circuitBreaker: {
        failures: breaker.failures ?? defaults.httpsDestination.circuitBreaker.failures,
        cooldownMs: durationMs(breaker.cooldown ?? defaults.httpsDestination.circuitBreaker.cooldown),
      },
    };
  }
  return {
    ...common,
    type: 'file',
    dir: path.resolve(dir, destination.dir),
    filename: destination.filename ?? defaults.file.filename,
    onExists: destination.onExists ?? defaults.file.onExists,
  };
}
