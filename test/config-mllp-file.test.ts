import test from 'ava';
import { join } from 'node:path';
import type { MllpDestinationConfig } from '../engine/destinations/mllp.ts';
import { configProblems, configProject, parseConfigIn } from './helpers/config.ts';

// The config keys of the MLLP destination, the MLLP source's TLS and the file source: defaults, what they normalize to,
// and the consistency checks, each reported with its line and key path.

/** Files the configs below may name. */
const CERTS = ['certs/ca.crt', 'certs/client.crt', 'certs/client.key', 'certs/server.crt', 'certs/server.key'];

const sending = (destination: string): string =>
  `channels:\n  - name: adt\n    source: { type: channel }\n    destinations:\n      - ${destination}\n`;

const reading = (...sources: string[]): string =>
  `channels:\n${sources.map((source, i) => `  - name: lab${i}\n    source: ${source}\n    destinations:\n      - { name: d, type: file, dir: out${i} }\n`).join('')}`;

test('mllp destination: defaults', async (t) => {
  const dir = await configProject(t, CERTS);
  t.deepEqual(parseConfigIn(dir, sending('{ name: ehr, type: mllp, host: ehr.example.org, port: 2575 }')).channels[0]!.destinations[0], {
    name: 'ehr',
    type: 'mllp',
    order: 'fifo',
    retry: { attempts: 5, backoff: 'exponential', delayMs: 1000, maxDelayMs: 300_000 },
    host: 'ehr.example.org',
    port: 2575,
    tls: undefined,
    ackTimeoutMs: 30_000,
  });
});

test('mllp destination: every key, TLS paths resolved against the config folder', async (t) => {
  const dir = await configProject(t, CERTS);
  const destination = parseConfigIn(
    dir,
    sending(
      '{ name: ehr, type: mllp, host: 10.0.0.5, port: 2575, ackTimeout: 5s, order: parallel, retry: { attempts: 0, delay: 2s }, tls: { ca: certs/ca.crt, cert: certs/client.crt, key: certs/client.key, servername: ehr.example.org } }',
    ),
  ).channels[0]!.destinations[0] as MllpDestinationConfig;
  t.like(destination, { order: 'parallel', ackTimeoutMs: 5000, retry: { attempts: 0, backoff: 'exponential', delayMs: 2000, maxDelayMs: 300_000 } });
  t.deepEqual(destination.tls, {
    ca: join(dir, 'certs/ca.crt'),
    cert: join(dir, 'certs/client.crt'),
    key: join(dir, 'certs/client.key'),
    servername: 'ehr.example.org',
  });
  // `tls: {}` is TLS against the system CAs.
  const plainTls = parseConfigIn(dir, sending('{ name: ehr, type: mllp, host: h, port: 1, tls: {} }')).channels[0]!.destinations[0] as MllpDestinationConfig;
  t.deepEqual(plainTls.tls, { ca: undefined, cert: undefined, key: undefined, servername: undefined });
});

test('file source: defaults', async (t) => {
  const dir = await configProject(t, CERTS);
  t.deepEqual(parseConfigIn(dir, reading('{ type: file, dir: inbox/lab }')).channels[0]!.source, {
    type: 'file',
    dir: join(dir, 'inbox/lab'),
    pattern: '*.hl7',
    pollIntervalMs: 1000,
    after: 'move',
    processedDir: join(dir, 'inbox/lab/processed'),
    errorDir: join(dir, 'inbox/lab/error'),
    encoding: 'auto',
    maxFileBytes: 64 * 1024 * 1024,
  });
});

test('file source: every key; processedDir and errorDir resolve against the config folder', async (t) => {
  const dir = await configProject(t, CERTS);
  t.deepEqual(
    parseConfigIn(dir, reading('{ type: file, dir: /srv/in, pattern: "ADT_*.{hl7,txt}", pollInterval: 250ms, after: move, processedDir: done, errorDir: /srv/bad, encoding: 8859/1, maxFileSize: 2MB }'))
      .channels[0]!.source,
    {
      type: 'file',
      dir: '/srv/in',
      pattern: 'ADT_*.{hl7,txt}',
      pollIntervalMs: 250,
      after: 'move',
      processedDir: join(dir, 'done'),
      errorDir: '/srv/bad',
      encoding: '8859/1',
      maxFileBytes: 2 * 1024 * 1024,
    },
  );
  t.like(parseConfigIn(dir, reading('{ type: file, dir: in, after: delete }')).channels[0]!.source, { after: 'delete' });
});

test('mllp source over TLS: paths resolved against the config folder, clientCert defaults to none; no tls key without TLS', async (t) => {
  const dir = await configProject(t, CERTS);
  t.like(parseConfigIn(dir, reading('{ type: mllp, port: 2575, tls: { cert: certs/server.crt, key: certs/server.key } }')).channels[0]!.source, {
    type: 'mllp',
    tls: { cert: join(dir, 'certs/server.crt'), key: join(dir, 'certs/server.key'), ca: undefined, clientCert: 'none' },
  });
  t.like(parseConfigIn(dir, reading('{ type: mllp, port: 2575, tls: { cert: certs/server.crt, key: certs/server.key, ca: certs/ca.crt, clientCert: require } }')).channels[0]!.source, {
    tls: { ca: join(dir, 'certs/ca.crt'), clientCert: 'require' },
  });
  t.false('tls' in parseConfigIn(dir, reading('{ type: mllp, port: 2575 }')).channels[0]!.source);
});

const mistakes: Array<[string, string, RegExp]> = [
  ['mllp: no port', sending('{ name: ehr, type: mllp, host: h }'), /:5:9 channels\[0\]\.destinations\[0\]: missing required key "port"/],
  ['mllp: port 0', sending('{ name: ehr, type: mllp, host: h, port: 0 }'), /destinations\[0\]\.port: must be at least 1 \(got 0\)/],
  ['mllp: bad ackTimeout', sending('{ name: ehr, type: mllp, host: h, port: 1, ackTimeout: soon }'), /destinations\[0\]\.ackTimeout: must be a duration/],
  ['mllp: tls cert without key', sending('{ name: ehr, type: mllp, host: h, port: 1, tls: { cert: certs/client.crt } }'), /destinations\[0\]\.tls\.cert: a client certificate needs both cert and key/],
  ['mllp: tls file missing', sending('{ name: ehr, type: mllp, host: h, port: 1, tls: { ca: certs/nope.crt } }'), /destinations\[0\]\.tls\.ca: file not found: .*certs\/nope\.crt/],
  ['mllp: unknown tls key', sending('{ name: ehr, type: mllp, host: h, port: 1, tls: { verify: false } }'), /destinations\[0\]\.tls\.verify: unknown key "verify"/],
  ['mllp source: tls without key', reading('{ type: mllp, port: 2575, tls: { cert: certs/server.crt } }'), /source\.tls: missing required key "key"/],
  ['mllp source: tls file missing', reading('{ type: mllp, port: 2575, tls: { cert: certs/nope.crt, key: certs/server.key } }'), /source\.tls\.cert: file not found: .*certs\/nope\.crt/],
  [
    'mllp source: require without ca',
    reading('{ type: mllp, port: 2575, tls: { cert: certs/server.crt, key: certs/server.key, clientCert: require } }'),
    /source\.tls\.clientCert: require needs ca: the CA that client certificates must chain to/,
  ],
  ['mllp source: clientCert request', reading('{ type: mllp, port: 2575, tls: { cert: certs/server.crt, key: certs/server.key, clientCert: request } }'), /source\.tls\.clientCert: must be one of none, require \(got "request"\)/],
  ['file: no dir', reading('{ type: file }'), /channels\[0\]\.source: missing required key "dir"/],
  ['file: a path as pattern', reading('{ type: file, dir: in, pattern: "sub/*.hl7" }'), /source\.pattern: must be a file-name glob such as \*\.hl7/],
  ['file: a glob that does not compile', reading('{ type: file, dir: in, pattern: "lab[z-a].hl7" }'), /source\.pattern: is not a valid glob: /],
  ['file: after', reading('{ type: file, dir: in, after: archive }'), /source\.after: must be one of move, delete \(got "archive"\)/],
  ['file destination: onExists', sending('{ name: out, type: file, dir: out, onExists: append }'), /destinations\[0\]\.onExists: must be one of suffix, error, overwrite \(got "append"\)/],
  ['file: processedDir with delete', reading('{ type: file, dir: in, after: delete, processedDir: done }'), /source\.processedDir: is only used with after: move/],
  ['file: processedDir is the folder', reading('{ type: file, dir: in, processedDir: ./in/ }'), /source\.processedDir: must not be the watched folder itself/],
  ['file: errorDir is the folder', reading('{ type: file, dir: in, errorDir: in }'), /source\.errorDir: must not be the watched folder itself/],
  [
    'file: processedDir watched by another channel',
    reading('{ type: file, dir: in, processedDir: in2 }', '{ type: file, dir: in2 }'),
    /channels\[0\]\.source\.processedDir: .*in2 is watched by channel "lab1": files moved there would be read again/,
  ],
  ['file: one folder, two sources', reading('{ type: file, dir: in }', '{ type: file, dir: ./in, pattern: "*.txt" }'), /channels\[1\]\.source\.dir: .*in is already watched by channel "lab0"/],
  ['file: unknown encoding', reading('{ type: file, dir: in, encoding: EBCDIC }'), /source\.encoding: unknown character set "EBCDIC"/],
  ['file: poll too fast', reading('{ type: file, dir: in, pollInterval: 5ms }'), /source\.pollInterval: must be at least 10ms \(got "5ms"\)/],
  ['file: unknown key', reading('{ type: file, dir: in, recursive: true }'), /source\.recursive: unknown key "recursive"/],
];

for (const [what, text, expected] of mistakes) {
  test(`config problem: ${what}`, async (t) => {
    const dir = await configProject(t, CERTS);
    const message = configProblems(dir, text);
    t.regex(message, /^CONFIG_INVALID\n/);
    t.regex(message, expected);
  });
}
