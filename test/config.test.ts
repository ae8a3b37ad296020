import test from 'ava';
import { Ajv } from 'ajv';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ChannelConfig, FerryConfig } from '../engine/config/contract.ts';
import { loadConfig, parseConfig } from '../engine/config/load.ts';
import { renderConfigSchema } from '../engine/config/schema.ts';
import { destinationConnectors, sourceConnectors } from '../engine/connectors.ts';
import type { ChannelDestinationConfig } from '../engine/destinations/channel.ts';
import type { FileDestinationConfig } from '../engine/destinations/file.ts';
import { FerryError, type ErrorCode } from '../engine/errors.ts';
import { checkAdminExposure } from '../engine/http/auth.ts';
import type { MllpSourceConfig } from '../engine/sources/mllp.ts';
import { tempDir } from './helpers/temp.ts';

// The example from the docs, verbatim: its keys are a contract.
const example = `engine:
  redis: embedded            # default; or a redis:// URL (rediss:// too) for an external Redis
  data: ./data               # message log, embedded Redis files
  admin: { host: 127.0.0.1, port: 8470 }
channels:
  - name: adt-archive
    source: { type: mllp, host: 127.0.0.1, port: 6661 }
    script: channels/adt-archive.ts      # optional; default channels/<name>.ts if that file exists
    destinations:
      - { name: archive, type: file, dir: ./out/adt-archive }
      - { name: to-lab, type: channel, channel: lab-feed }
  - name: lab-feed
    source: { type: channel }            # fed by other channels
    destinations:
      - { name: lab-files, type: file, dir: ./out/lab }
`;

const sourceTypes = sourceConnectors.map((c) => c.type).join(', ');
const destinationTypes = destinationConnectors.map((c) => c.type).join(', ');

const defaultRetry = { attempts: 5, backoff: 'exponential', delayMs: 1000, maxDelayMs: 300_000 } as const;
const defaultEngine = (dir: string): FerryConfig['engine'] => ({
  redis: { mode: 'embedded' },
  data: join(dir, 'data'),
  admin: { host: '127.0.0.1', port: 8470 },
  retentionMs: 30 * 86_400_000,
  logLevel: 'info',
  shutdownTimeoutMs: 10_000,
  commitTimeoutMs: 5_000,
  users: join(dir, 'users.yaml'),
  tokens: join(dir, 'tokens.yaml'),
});

const writeFiles = async (dir: string, files: Record<string, string>): Promise<void> => {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
};

/** A one-channel config around the given source and destination lines. */
const oneChannel = (source = '{ type: mllp, port: 6661 }', destination = '{ name: d, type: file, dir: out }') =>
  `channels:\n  - name: a\n    source: ${source}\n    destinations:\n      - ${destination}\n`;

const failure = (text: string, env: NodeJS.ProcessEnv = {}): FerryError => {
  try {
    parseConfig(text, 'channels.yaml', env);
  } catch (error) {
    if (error instanceof FerryError) return error;
    throw error;
  }
  throw new Error('expected the config to be rejected');
};

test('the documented example parses to the exact normalized config', async (t) => {
  const dir = await tempDir(t);
  await writeFiles(dir, { 'channels.yaml': example, 'channels/adt-archive.ts': 'export default (m: string) => m;\n' });
  const mllp: MllpSourceConfig = {
    type: 'mllp',
    host: '127.0.0.1',
    port: 6661,
    maxFrameBytes: 1024 ** 2,
    idleTimeoutMs: 300_000,
    maxConnections: 100,
    maxConnectionsPerAddress: 10,
  };
  const files = (name: string, out: string): FileDestinationConfig => ({
    name,
    order: 'fifo',
    retry: defaultRetry,
    type: 'file',
    dir: join(dir, out),
    filename: '{id}',
    onExists: 'suffix',
  });
  const toLab: ChannelDestinationConfig = { name: 'to-lab', order: 'fifo', retry: defaultRetry, type: 'channel', channel: 'lab-feed' };
  const expected: FerryConfig = {
    file: join(dir, 'channels.yaml'),
    dir,
    engine: defaultEngine(dir),
    channels: [
      {
        name: 'adt-archive',
        source: mllp,
        script: join(dir, 'channels/adt-archive.ts'),
        scriptLimits: { memoryBytes: 64 * 1024 ** 2, timeoutMs: 1000, maxOutputs: 1000 },
        concurrency: 1,
        maxQueued: 100_000,
        dedupe: undefined,
        destinations: [files('archive', 'out/adt-archive'), toLab],
      },
      {
        name: 'lab-feed',
        source: { type: 'channel' },
        script: undefined,
        scriptLimits: { memoryBytes: 64 * 1024 ** 2, timeoutMs: 1000, maxOutputs: 1000 },
        concurrency: 1,
        maxQueued: 100_000,
        dedupe: undefined,
        destinations: [files('lab-files', 'out/lab')],
      },
    ],
  };
  t.deepEqual(await loadConfig(join(dir, 'channels.yaml'), {}), expected);
});

test('the channels.yaml at the repository root is the example, with the schema comment on top', async (t) => {
  const text = await readFile(new URL('../channels.yaml', import.meta.url), 'utf8');
  t.true(text.startsWith('# yaml-language-server: $schema=engine/channels.schema.json\n'));
  // Read beside a stub script rather than the repo's own, so translator work elsewhere cannot break this.
  const dir = await tempDir(t);
  await writeFiles(dir, { 'channels.yaml': text, 'example.yaml': example, 'channels/adt-archive.ts': '' });
  const { file: _root, ...root } = await loadConfig(join(dir, 'channels.yaml'), {});
  const { file: _example, ...fromExample } = await loadConfig(join(dir, 'example.yaml'), {});
  t.deepEqual(root, fromExample);
});

test('every optional key takes its default', async (t) => {
  const dir = await tempDir(t);
  const config = parseConfig(oneChannel(), join(dir, 'channels.yaml'), {});
  t.deepEqual(config.engine, defaultEngine(dir));
  t.deepEqual(config.channels, [
    {
      name: 'a',
      source: { type: 'mllp', host: '127.0.0.1', port: 6661, maxFrameBytes: 1024 ** 2, idleTimeoutMs: 300_000, maxConnections: 100, maxConnectionsPerAddress: 10 },
      script: undefined,
      scriptLimits: { memoryBytes: 64 * 1024 ** 2, timeoutMs: 1000, maxOutputs: 1000 },
      concurrency: 1,
      maxQueued: 100_000,
      dedupe: undefined,
      destinations: [{ name: 'd', order: 'fifo', retry: defaultRetry, type: 'file', dir: join(dir, 'out'), filename: '{id}', onExists: 'suffix' }],
    },
  ]);
});

test('every key can be set', async (t) => {
  const dir = await tempDir(t);
  const text = `engine:
  redis: rediss://user:secret@redis.example.org:6380/2
  data: /var/lib/ferry
  admin: { host: 0.0.0.0, port: 0 }
  retention: 7d
  logLevel: debug
  shutdownTimeout: 2500
channels:
  - name: adt_2
    source: { type: mllp, host: 0.0.0.0, port: 2575, maxFrameSize: 4MB, idleTimeout: 30s, maxConnections: 8, maxConnectionsPerAddress: 4 }
    scriptLimits: { memory: 128MB, timeout: 250ms, maxOutputs: 5000 }
    concurrency: 4
    destinations:
      - name: files
        type: file
        dir: out
        filename: "{channel}-{date}-{time}-{controlId}-{index}.hl7"
        onExists: overwrite
        order: parallel
        retry: { attempts: 0, backoff: fixed, delay: 10s, maxDelay: 1h }
`;
  const config = parseConfig(text, join(dir, 'channels.yaml'), {});
  t.deepEqual(config.engine, {
    redis: { mode: 'url', url: 'rediss://user:secret@redis.example.org:6380/2' },
    data: '/var/lib/ferry',
    admin: { host: '0.0.0.0', port: 0 },
    retentionMs: 7 * 86_400_000,
    logLevel: 'debug',
    shutdownTimeoutMs: 2500,
    commitTimeoutMs: 5_000,
    users: join(dir, 'users.yaml'),
    tokens: join(dir, 'tokens.yaml'),
  });
  t.deepEqual(config.channels[0], {
    name: 'adt_2',
    source: { type: 'mllp', host: '0.0.0.0', port: 2575, maxFrameBytes: 4 * 1024 ** 2, idleTimeoutMs: 30_000, maxConnections: 8, maxConnectionsPerAddress: 4 },
    script: undefined,
    scriptLimits: { memoryBytes: 128 * 1024 ** 2, timeoutMs: 250, maxOutputs: 5000 },
    concurrency: 4,
    maxQueued: 100_000,
    dedupe: undefined,
    destinations: [
      {
        name: 'files',
        order: 'parallel',
        retry: { attempts: 0, backoff: 'fixed', delayMs: 10_000, maxDelayMs: 3_600_000 },
        type: 'file',
        dir: join(dir, 'out'),
        filename: '{channel}-{date}-{time}-{controlId}-{index}.hl7',
        onExists: 'overwrite',
      },
    ],
  });
});

const durations: Array<[string, number]> = [
  ['0', 0],
  ['1500', 1500],
  ['500ms', 500],
  ['30s', 30_000],
  ['5m', 300_000],
  ['2h', 7_200_000],
  ['30d', 2_592_000_000],
];
for (const [written, ms] of durations) {
  test(`duration ${written} is ${ms} ms`, (t) => {
    const config = parseConfig(oneChannel(`{ type: mllp, port: 6661, idleTimeout: ${written} }`), 'channels.yaml', {});
    t.is((config.channels[0]!.source as MllpSourceConfig).idleTimeoutMs, ms);
  });
}

const sizes: Array<[string, number]> = [
  ['65536', 65_536],
  ['100B', 100],
  ['512KB', 512 * 1024],
  ['1MB', 1024 ** 2],
  ['64MB', 64 * 1024 ** 2],
  ['1GB', 1024 ** 3],
];
for (const [written, bytes] of sizes) {
  test(`size ${written} is ${bytes} bytes`, (t) => {
    const config = parseConfig(oneChannel(`{ type: mllp, port: 6661, maxFrameSize: ${written} }`), 'channels.yaml', {});
    t.is((config.channels[0]!.source as MllpSourceConfig).maxFrameBytes, bytes);
  });
}

const pick = {
  port: (c: FerryConfig) => (c.channels[0]!.source as MllpSourceConfig).port,
  host: (c: FerryConfig) => (c.channels[0]!.source as MllpSourceConfig).host,
  idle: (c: FerryConfig) => (c.channels[0]!.source as MllpSourceConfig).idleTimeoutMs,
  dir: (c: FerryConfig) => (c.channels[0]!.destinations[0] as FileDestinationConfig).dir,
  redis: (c: FerryConfig) => c.engine.redis,
};
const interpolations: Array<{ title: string; text: string; env: NodeJS.ProcessEnv; read: (c: FerryConfig) => unknown; expected: unknown }> = [
  { title: 'a set variable', text: oneChannel('{ type: mllp, host: "${HOST}", port: 6661 }'), env: { HOST: '10.0.0.5' }, read: pick.host, expected: '10.0.0.5' },
  { title: 'inside a longer string', text: oneChannel(undefined, '{ name: d, type: file, dir: "/srv/${SITE}/out" }'), env: { SITE: 'north' }, read: pick.dir, expected: '/srv/north/out' },
  { title: 'the default when unset', text: oneChannel('{ type: mllp, host: "${HOST:-0.0.0.0}", port: 6661 }'), env: {}, read: pick.host, expected: '0.0.0.0' },
  { title: 'the default when empty', text: oneChannel('{ type: mllp, host: "${HOST:-0.0.0.0}", port: 6661 }'), env: { HOST: '' }, read: pick.host, expected: '0.0.0.0' },
  { title: 'the value over the default', text: oneChannel('{ type: mllp, host: "${HOST:-0.0.0.0}", port: 6661 }'), env: { HOST: '10.0.0.5' }, read: pick.host, expected: '10.0.0.5' },
  { title: '$${ as a literal ${', text: oneChannel(undefined, '{ name: d, type: file, dir: "/srv/$${SITE}" }'), env: { SITE: 'north' }, read: pick.dir, expected: '/srv/${SITE}' },
  { title: 'a whole-scalar number into an integer field', text: 'channels:\n  - name: a\n    source:\n      type: mllp\n      port: ${PORT}\n    destinations:\n      - { name: d, type: file, dir: out }\n', env: { PORT: '2575' }, read: pick.port, expected: 2575 },
  { title: 'a quoted number into an integer field', text: oneChannel('{ type: mllp, port: "${PORT}" }'), env: { PORT: '2575' }, read: pick.port, expected: 2575 },
  { title: 'a defaulted number into a duration', text: oneChannel('{ type: mllp, port: 6661, idleTimeout: "${IDLE:-90000}" }'), env: {}, read: pick.idle, expected: 90_000 },
  { title: 'a unit string into a duration', text: oneChannel('{ type: mllp, port: 6661, idleTimeout: "${IDLE}" }'), env: { IDLE: '2m' }, read: pick.idle, expected: 120_000 },
  { title: 'a URL into engine.redis', text: `engine:\n  redis: \${REDIS_URL:-embedded}\n${oneChannel()}`, env: { REDIS_URL: 'redis://cache:6379' }, read: pick.redis, expected: { mode: 'url', url: 'redis://cache:6379' } },
];
for (const row of interpolations) {
  test(`\${ENV} interpolation: ${row.title}`, (t) => {
    t.deepEqual(row.read(parseConfig(row.text, 'channels.yaml', row.env)), row.expected);
  });
}

test('${ENV} interpolation: unset variables are CONFIG_ENV_MISSING, all listed with their lines', (t) => {
  const text = 'channels:\n  - name: a\n    source:\n      type: mllp\n      port: ${PORT}\n    destinations:\n      - { name: d, type: file, dir: "${OUT}/${SITE:-x}" }\n';
  const error = failure(text);
  t.is(error.code, 'CONFIG_ENV_MISSING');
  t.is(
    error.message,
    [
      'channels.yaml:5:13 channels[0].source.port: environment variable PORT is not set (give a default with ${PORT:-value})',
      'channels.yaml:7:37 channels[0].destinations[0].dir: environment variable OUT is not set (give a default with ${OUT:-value})',
    ].join('\n'),
  );
});

test('interpolation does not make literal strings into numbers', (t) => {
  t.is(
    failure(oneChannel('{ type: mllp, port: "6661" }')).message,
    'channels.yaml:3:33 channels[0].source.port: must be an integer (got "6661")',
  );
  // and an interpolated number stays a string where the schema wants one
  const config = parseConfig(oneChannel(undefined, '{ name: d, type: file, dir: "${N}" }'), 'channels.yaml', { N: '2024' });
  t.is(pick.dir(config), join(process.cwd(), '2024'));
});

test('relative paths resolve against the config file folder, absolute paths stay', async (t) => {
  const dir = await tempDir(t);
  const configDir = join(dir, 'conf');
  await writeFiles(configDir, { 'scripts/a.ts': 'export default (m: string) => m;\n' });
  const text = `engine:\n  data: ../state\nchannels:\n  - name: a\n    source: { type: channel }\n    script: scripts/a.ts\n    destinations:\n      - { name: rel, type: file, dir: out/a }\n      - { name: abs, type: file, dir: /srv/out }\n  - name: b\n    source: { type: mllp, port: 6661 }\n    destinations: [{ name: h, type: channel, channel: a }]\n`;
  const config = parseConfig(text, join(configDir, 'channels.yaml'), {});
  t.is(config.file, join(configDir, 'channels.yaml'));
  t.is(config.dir, configDir);
  t.is(config.engine.data, join(dir, 'state'));
  t.is(config.channels[0]!.script, join(configDir, 'scripts/a.ts'));
  t.deepEqual(
    config.channels[0]!.destinations.map((d) => (d.type === 'file' ? (d as FileDestinationConfig).dir : undefined)),
    [join(configDir, 'out/a'), '/srv/out'],
  );
});

test('the default script is channels/<name>.ts when that file exists, else none', async (t) => {
  const dir = await tempDir(t);
  await writeFiles(dir, { 'channels/with-script.ts': 'export default (m: string) => m;\n' });
  const text = `channels:\n  - name: with-script\n    source: { type: mllp, port: 6661 }\n    destinations: [{ name: d, type: file, dir: out }]\n  - name: pass-through\n    source: { type: mllp, port: 6662 }\n    destinations: [{ name: d, type: file, dir: out }]\n`;
  const config = parseConfig(text, join(dir, 'channels.yaml'), {});
  t.deepEqual(
    config.channels.map((c: ChannelConfig) => c.script),
    [join(dir, 'channels/with-script.ts'), undefined],
  );
});

test('listeners on distinct hosts, or on port 0, do not conflict', (t) => {
  const text = `engine:\n  admin: { port: 0 }\nchannels:\n  - name: a\n    source: { type: mllp, host: 127.0.0.1, port: 6661 }\n    destinations: [{ name: d, type: file, dir: out }]\n  - name: b\n    source: { type: mllp, host: 10.0.0.5, port: 6661 }\n    destinations: [{ name: d, type: file, dir: out }]\n  - name: c\n    source: { type: mllp, host: 0.0.0.0, port: 0 }\n    destinations: [{ name: d, type: file, dir: out }]\n  - name: e\n    source: { type: mllp, port: 0 }\n    destinations: [{ name: d, type: file, dir: out }]\n`;
  t.deepEqual(
    parseConfig(text, 'channels.yaml', {}).channels.map((c: ChannelConfig) => c.source),
    [
      { type: 'mllp', host: '127.0.0.1', port: 6661, maxFrameBytes: 1024 ** 2, idleTimeoutMs: 300_000, maxConnections: 100, maxConnectionsPerAddress: 10 },
      { type: 'mllp', host: '10.0.0.5', port: 6661, maxFrameBytes: 1024 ** 2, idleTimeoutMs: 300_000, maxConnections: 100, maxConnectionsPerAddress: 10 },
      { type: 'mllp', host: '0.0.0.0', port: 0, maxFrameBytes: 1024 ** 2, idleTimeoutMs: 300_000, maxConnections: 100, maxConnectionsPerAddress: 10 },
      { type: 'mllp', host: '127.0.0.1', port: 0, maxFrameBytes: 1024 ** 2, idleTimeoutMs: 300_000, maxConnections: 100, maxConnectionsPerAddress: 10 },
    ],
  );
});

// One row per kind of mistake: the exact text the user sees, with file:line:column and key path.
const cwd = process.cwd();
const mistakes: Array<{ kind: string; text: string; code?: ErrorCode; message: string }> = [
  {
    kind: 'unknown key',
    text: 'channels:\n  - name: a\n    colour: red\n    source: { type: channel }\n    destinations: [{ name: d, type: file, dir: out }]\n',
    message: 'channels.yaml:3:5 channels[0].colour: unknown key "colour"',
  },
  {
    kind: 'unknown key with a near miss',
    text: oneChannel('{ type: mllp, port: 6661, idleTimout: 5s }'),
    message: 'channels.yaml:3:39 channels[0].source.idleTimout: unknown key "idleTimout" (did you mean "idleTimeout"?)',
  },
  {
    kind: 'wrong type',
    text: oneChannel('{ type: mllp, port: six }'),
    message: 'channels.yaml:3:33 channels[0].source.port: must be an integer (got "six")',
  },
  {
    kind: 'wrong type for a list',
    text: 'channels:\n  name: a\n',
    message: 'channels.yaml:2:3 channels: must be a list (got a mapping)',
  },
  {
    kind: 'bad enum',
    text: oneChannel(undefined, '{ name: d, type: file, dir: out, order: fifa }'),
    message: 'channels.yaml:5:49 channels[0].destinations[0].order: must be one of fifo, parallel (got "fifa")',
  },
  {
    kind: 'bad discriminator',
    text: oneChannel(undefined, '{ name: d, type: fil, dir: out }'),
    // Every destination type, in the registry's order (engine/connectors.ts): file, channel, https, …
    message: `channels.yaml:5:26 channels[0].destinations[0].type: must be one of ${destinationTypes} (got "fil")`,
  },
  {
    kind: 'missing discriminator',
    text: oneChannel('{ port: 6661 }'),
    message: `channels.yaml:3:13 channels[0].source: missing required key "type" (one of ${sourceTypes})`,
  },
  {
    kind: 'missing required key',
    text: oneChannel('{ type: mllp }'),
    message: 'channels.yaml:3:13 channels[0].source: missing required key "port"',
  },
  {
    kind: 'port out of range',
    text: oneChannel('{ type: mllp, port: 70000 }'),
    message: 'channels.yaml:3:33 channels[0].source.port: must be at most 65535 (got 70000)',
  },
  {
    kind: 'bad channel name',
    text: oneChannel().replace('name: a', 'name: ADT feed'),
    message:
      'channels.yaml:2:11 channels[0].name: must be 1 to 63 characters of a-z, 0-9, "-" and "_", starting with a letter or digit (got "ADT feed")',
  },
  {
    kind: 'no destinations',
    text: 'channels:\n  - name: a\n    source: { type: channel }\n    destinations: []\n',
    message: 'channels.yaml:4:19 channels[0].destinations: must not be empty',
  },
  {
    kind: 'bad duration',
    text: oneChannel('{ type: mllp, port: 6661, idleTimeout: 5 min }'),
    message:
      'channels.yaml:3:52 channels[0].source.idleTimeout: must be a duration: milliseconds, or a number with ms, s, m, h or d (500ms, 30s, 5m, 2h, 30d) (got "5 min")',
  },
  {
    kind: 'bad size',
    text: oneChannel('{ type: mllp, port: 6661, maxFrameSize: 1.5MB }'),
    message:
      'channels.yaml:3:53 channels[0].source.maxFrameSize: must be a size: bytes, or a number with B, KB, MB or GB (512KB, 1MB, 64MB) (got "1.5MB")',
  },
  {
    kind: 'script memory below the minimum',
    text: 'channels:\n  - name: a\n    source: { type: channel }\n    scriptLimits: { memory: 4MB }\n    destinations: [{ name: d, type: file, dir: out }]\n',
    message: 'channels.yaml:4:29 channels[0].scriptLimits.memory: must be at least 8MB (got "4MB")',
  },
  {
    kind: 'maxOutputs above its maximum',
    text: 'channels:\n  - name: a\n    source: { type: channel }\n    scriptLimits: { maxOutputs: 20000 }\n    destinations: [{ name: d, type: file, dir: out }]\n',
    message: 'channels.yaml:4:33 channels[0].scriptLimits.maxOutputs: must be at most 10000 (got 20000)',
  },
  {
    kind: 'bad filename token',
    text: oneChannel(undefined, '{ name: d, type: file, dir: out, filename: "{id}-{sender}.hl7" }'),
    message:
      'channels.yaml:5:52 channels[0].destinations[0].filename: may use only the tokens {id} {channel} {destination} {index} {controlId} {date} {time}, and no "/", "\\" or ".." (got "{id}-{sender}.hl7")',
  },
  {
    kind: 'filename leaving its folder',
    text: oneChannel(undefined, '{ name: d, type: file, dir: out, filename: "../{id}" }'),
    message:
      'channels.yaml:5:52 channels[0].destinations[0].filename: may use only the tokens {id} {channel} {destination} {index} {controlId} {date} {time}, and no "/", "\\" or ".." (got "../{id}")',
  },
  {
    kind: 'duplicate channel names',
    text: `${oneChannel()}  - name: a\n    source: { type: channel }\n    destinations: [{ name: d, type: file, dir: out }]\n`,
    message: 'channels.yaml:6:11 channels[1].name: duplicate channel name "a" (first at line 2)',
  },
  {
    kind: 'duplicate destination names',
    text: 'channels:\n  - name: a\n    source: { type: channel }\n    destinations:\n      - { name: d, type: file, dir: out }\n      - { name: d, type: file, dir: out2 }\n',
    message: 'channels.yaml:6:17 channels[0].destinations[1].name: duplicate destination name "d" in this channel (first at line 5)',
  },
  {
    kind: 'duplicate ports',
    text: `${oneChannel()}  - name: b\n    source: { type: mllp, host: 0.0.0.0, port: 6661 }\n    destinations: [{ name: d, type: file, dir: out }]\n`,
    message: 'channels.yaml:7:48 channels[1].source.port: 0.0.0.0:6661 is already taken by channel "a" on 127.0.0.1:6661',
  },
  {
    kind: 'an MLLP port on the admin port',
    text: `engine:\n  admin: { host: 0.0.0.0 }\n${oneChannel('{ type: mllp, port: 8470 }')}`,
    message: 'channels.yaml:5:33 channels[0].source.port: 127.0.0.1:8470 is already taken by the admin API on 0.0.0.0:8470',
  },
  {
    kind: 'unknown channel target',
    text: `${oneChannel(undefined, '{ name: d, type: channel, channel: lab-fed }')}  - name: lab-feed\n    source: { type: channel }\n    destinations: [{ name: d, type: file, dir: out }]\n`,
    message: 'channels.yaml:5:44 channels[0].destinations[0].channel: no channel named "lab-fed" in this file (did you mean "lab-feed"?)',
  },
  {
    kind: 'hand-off to a channel with its own listener',
    text: `${oneChannel()}  - name: b\n    source: { type: channel }\n    destinations: [{ name: h, type: channel, channel: a }]\n`,
    message: 'channels.yaml:8:55 channels[1].destinations[0].channel: channel "a" does not take hand-offs: its source must be { type: channel }',
  },
  {
    kind: 'hand-off cycle',
    text: 'channels:\n  - name: a\n    source: { type: channel }\n    destinations: [{ name: h, type: channel, channel: b }]\n  - name: b\n    source: { type: channel }\n    destinations: [{ name: h, type: channel, channel: a }]\n',
    message: 'channels.yaml:7:55 channels[1].destinations[0].channel: hand-off cycle a → b → a',
  },
  {
    kind: 'hand-off to itself',
    text: 'channels:\n  - name: a\n    source: { type: channel }\n    destinations: [{ name: h, type: channel, channel: a }]\n',
    message: 'channels.yaml:4:55 channels[0].destinations[0].channel: hand-off cycle a → a',
  },
  {
    kind: 'explicit script that does not exist',
    text: 'channels:\n  - name: a\n    source: { type: channel }\n    script: channels/nope.ts\n    destinations: [{ name: d, type: file, dir: out }]\n',
    code: 'SCRIPT_NOT_FOUND',
    message: `channels.yaml:4:13 channels[0].script: script not found: ${join(cwd, 'channels/nope.ts')}`,
  },
  {
    kind: 'YAML syntax error',
    text: 'channels:\n  - name: a\n    source: { type: mllp, port: 6661\n    destinations: []\n',
    code: 'CONFIG_SYNTAX',
    message: 'channels.yaml:4:5 Flow map in block collection must be sufficiently indented and end with a }',
  },
  {
    kind: 'unquoted ${VAR} in a flow mapping',
    text: oneChannel('{ type: mllp, port: ${PORT} }'),
    code: 'CONFIG_SYNTAX',
    message: 'channels.yaml:3:33 Unexpected flow-map-start at node end (inside { } or [ ] a ${VAR} must be quoted: "${VAR}")',
  },
  {
    kind: 'duplicate key',
    text: 'channels: []\nchannels: []\n',
    code: 'CONFIG_SYNTAX',
    message: 'channels.yaml:2:1 Map keys must be unique',
  },
  {
    kind: 'empty file',
    text: '# nothing yet\n',
    message: 'channels.yaml:1:1 the file is empty; it needs at least a channels: list',
  },
];
for (const row of mistakes) {
  test(`rejects: ${row.kind}`, (t) => {
    const error = failure(row.text, { PORT: '6661' });
    t.is(error.code, row.code ?? 'CONFIG_INVALID');
    t.is(error.message, row.message);
  });
}

test('a missing file is CONFIG_NOT_FOUND', async (t) => {
  const dir = await tempDir(t);
  const error = await t.throwsAsync(loadConfig(join(dir, 'channels.yaml')), { instanceOf: FerryError });
  t.is(error.code, 'CONFIG_NOT_FOUND');
  t.is(error.message, `config file ${join(dir, 'channels.yaml')} does not exist`);
});

test('checkAdminExposure: without users the admin API may listen on loopback only', (t) => {
  const dir = join('/', 'projects', 'feed');
  const withAdmin = (host: string): FerryConfig => parseConfig(`engine:\n  admin: { host: "${host}", port: 8470 }\n${oneChannel()}`, join(dir, 'channels.yaml'), {});
  for (const host of ['127.0.0.1', '127.3.2.1', 'localhost', '::1']) t.notThrows(() => checkAdminExposure(withAdmin(host), 0), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'central.example.org']) {
    const error = t.throws(() => checkAdminExposure(withAdmin(host), 0), { instanceOf: FerryError }, host);
    t.is(error.code, 'ADMIN_NOT_LOOPBACK');
    t.is(
      error.message,
      `engine.admin.host is ${host} but ${join(dir, 'users.yaml')} has no users, and without users the admin API has no login: add one (ferry user add <name> --role admin) or listen on 127.0.0.1`,
    );
    t.notThrows(() => checkAdminExposure(withAdmin(host), 1), `${host} with a user`);
  }
});

test('all problems are reported together, in file order, with structured details', (t) => {
  const text = `engine:
  logLevel: loud
channels:
  - name: a
    source: { type: mllp, port: 6661, extra: 1 }
    script: channels/nope.ts
    destinations:
      - { name: d, type: channel, channel: b }
  - name: a
    source: { type: channel }
    destinations: [{ name: d, type: file, dir: out, retry: { delay: soon } }]
`;
  const error = failure(text);
  t.is(error.code, 'CONFIG_INVALID');
  const row = (code: string, line: number, column: number, path: string, message: string) => ({ code, file: 'channels.yaml', line, column, path, message });
  const errors = [
    row('CONFIG_INVALID', 2, 13, 'engine.logLevel', 'must be one of fatal, error, warn, info, debug, trace (got "loud")'),
    row('CONFIG_INVALID', 5, 39, 'channels[0].source.extra', 'unknown key "extra"'),
    row('SCRIPT_NOT_FOUND', 6, 13, 'channels[0].script', `script not found: ${join(cwd, 'channels/nope.ts')}`),
    row('CONFIG_INVALID', 8, 44, 'channels[0].destinations[0].channel', 'no channel named "b" in this file'),
    row('CONFIG_INVALID', 9, 11, 'channels[1].name', 'duplicate channel name "a" (first at line 4)'),
    row(
      'CONFIG_INVALID',
      11,
      69,
      'channels[1].destinations[0].retry.delay',
      'must be a duration: milliseconds, or a number with ms, s, m, h or d (500ms, 30s, 5m, 2h, 30d) (got "soon")',
    ),
  ];
  t.deepEqual(error.details, { file: 'channels.yaml', errors });
  t.is(error.message, errors.map((e) => `${e.file}:${e.line}:${e.column} ${e.path}: ${e.message}`).join('\n'));
});

test('engine/channels.schema.json is up to date (node --import tsx scripts/write-config-schema.ts)', async (t) => {
  const committed = await readFile(new URL('../engine/channels.schema.json', import.meta.url), 'utf8');
  t.is(committed, renderConfigSchema());
});

test('the published schema works on its own: accepts the example, flags mistakes', (t) => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(JSON.parse(renderConfigSchema()));
  t.true(validate(parseYaml(example)), ajv.errorsText(validate.errors));
  t.false(validate(parseYaml(oneChannel(undefined, '{ name: d, type: file, dir: out, order: fifa }'))));
  t.false(validate(parseYaml(oneChannel(undefined, '{ name: d, type: file, dir: out, filename: "{nope}" }'))));
});

test('every key in the published schema has a title and a description for editors', (t) => {
  const missing: string[] = [];
  const walk = (schema: Record<string, unknown>, at: string): void => {
    for (const [key, sub] of Object.entries((schema['properties'] ?? {}) as Record<string, Record<string, unknown>>)) {
      if (typeof sub['title'] !== 'string' || typeof sub['description'] !== 'string') missing.push(`${at}.${key}`);
      walk(sub, `${at}.${key}`);
    }
    for (const sub of [schema['items'], ...((schema['oneOf'] as unknown[]) ?? [])]) {
      if (sub) walk(sub as Record<string, unknown>, at);
    }
  };
  walk(JSON.parse(renderConfigSchema()), '');
  t.deepEqual(missing, []);
});
