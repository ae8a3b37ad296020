import test from 'ava';
import { join } from 'node:path';
import { parseConfig } from '../../engine/config/load.ts';
import { configProblems, configProject, parseConfigIn } from '../helpers/config.ts';

// The HTTPS keys of channels.yaml: engine.https, https sources, https destinations — their
// defaults, what they normalize to, and every problem reported with its line and key path.

const PEM = ['certs/server.crt', 'certs/server.key', 'certs/ca.crt', 'certs/clients/a.crt', 'certs/clients/a.key'];

const LISTENER = `engine:\n  https: { port: 8443, cert: certs/server.crt, key: certs/server.key }\n`;

const receiving = (source: string, engine = LISTENER): string =>
  `${engine}channels:\n  - name: adt\n    source: ${source}\n    destinations:\n      - { name: d, type: file, dir: out }\n`;

const sending = (destination: string): string =>
  `channels:\n  - name: site\n    source: { type: mllp, port: 6661 }\n    destinations:\n      - ${destination}\n`;

test('defaults: listener, source and destination', async (t) => {
  const dir = await configProject(t, PEM);
  const config = parseConfigIn(dir, receiving('{ type: https, path: /in/adt, auth: token }'));
  t.deepEqual(config.engine.https, {
    host: '127.0.0.1',
    port: 8443,
    plain: false,
    cert: join(dir, 'certs/server.crt'),
    key: join(dir, 'certs/server.key'),
    ca: undefined,
    clientCert: 'none',
  });
  t.deepEqual(config.channels[0]!.source, {
    type: 'https',
    path: '/in/adt',
    maxBodyBytes: 1024 * 1024,
    allowIps: [],
    requireTls: true,
    auth: 'token',
    rateLimit: undefined,
  });

  const sender = parseConfigIn(dir, sending('{ name: central, type: https, url: "https://central:8443/in/adt" }'));
  t.deepEqual(sender.channels[0]!.destinations[0], {
    name: 'central',
    order: 'fifo',
    retry: { attempts: 5, backoff: 'exponential', delayMs: 1000, maxDelayMs: 300_000 },
    type: 'https',
    url: 'https://central:8443/in/adt',
    token: undefined,
    hmac: undefined,
    ca: undefined,
    cert: undefined,
    key: undefined,
    timeoutMs: 30_000,
    headers: {},
    allowDynamicUrl: [],
    circuitBreaker: { failures: 5, cooldownMs: 30_000 },
  });
  t.is(sender.engine.https, undefined, 'no listener unless configured');
});

test('every key given: paths resolved, units parsed, env interpolated', async (t) => {
  const dir = await configProject(t, PEM);
  const config = parseConfig(
    `engine:
  https: { host: 0.0.0.0, port: 9443, cert: certs/server.crt, key: certs/server.key, ca: certs/ca.crt, clientCert: require }
channels:
  - name: adt
    source: { type: https, path: /in/adt, maxBody: 64KB, allowIps: [10.0.0.0/8, "::1"], requireTls: true, auth: mtls, rateLimit: { requests: 10, per: 1s } }
    destinations:
      - name: central
        type: https
        url: https://central.example.org/in/adt
        hmac: { keyId: site-a, secret: "\${SECRET}" }
        ca: certs/ca.crt
        cert: certs/clients/a.crt
        key: certs/clients/a.key
        timeout: 5s
        headers: { Content-Type: application/hl7-v2 }
        allowDynamicUrl: [https://api.example.org/]
        circuitBreaker: { failures: 3, cooldown: 1m }
        order: parallel
`,
    join(dir, 'channels.yaml'),
    { SECRET: 'fyk_from_the_environment' },
  );
  t.is(config.engine.https?.clientCert, 'require');
  t.is(config.engine.https?.ca, join(dir, 'certs/ca.crt'));
  const source = config.channels[0]!.source;
  t.like(source, { maxBodyBytes: 65_536, allowIps: ['10.0.0.0/8', '::1'], auth: 'mtls', rateLimit: { requests: 10, perMs: 1000 } });
  t.like(config.channels[0]!.destinations[0], {
    hmac: { keyId: 'site-a', secret: 'fyk_from_the_environment' },
    cert: join(dir, 'certs/clients/a.crt'),
    key: join(dir, 'certs/clients/a.key'),
    timeoutMs: 5000,
    headers: { 'Content-Type': 'application/hl7-v2' },
    allowDynamicUrl: ['https://api.example.org/'],
    circuitBreaker: { failures: 3, cooldownMs: 60_000 },
    order: 'parallel',
  });
});

test('plain HTTP only when explicit, and then sources must say requireTls: false', async (t) => {
  const dir = await configProject(t, PEM);
  const config = parseConfigIn(dir, receiving('{ type: https, path: /in/adt, auth: none, requireTls: false }', 'engine:\n  https: { port: 8080, plain: true }\n'));
  t.like(config.engine.https, { plain: true, cert: undefined, key: undefined });
  t.like(config.channels[0]!.source, { auth: 'none', requireTls: false });
});

const invalid: Array<[string, string, RegExp]> = [
  ['an https source without engine.https', receiving('{ type: https, path: /in/adt, auth: token }', ''), /:3:13 channels\[0\]\.source: an https source needs the engine HTTPS listener/],
  ['auth left out', receiving('{ type: https, path: /in/adt }'), /channels\[0\]\.source: missing required key "auth"/],
  ['an unknown auth', receiving('{ type: https, path: /in/adt, auth: basic }'), /channels\[0\]\.source\.auth: must be one of token, hmac, mtls, none/],
  ['a path that is not a path', receiving('{ type: https, path: in/adt, auth: none }'), /channels\[0\]\.source\.path: must be a URL path/],
  ['a listener without cert and key', receiving('{ type: https, path: /in/adt, auth: none }', 'engine:\n  https: { port: 8443 }\n'), /engine\.https: needs cert and key .* or plain: true/],
  ['a plain listener under a requireTls source', receiving('{ type: https, path: /in/adt, auth: none }', 'engine:\n  https: { port: 8080, plain: true }\n'), /channels\[0\]\.source\.requireTls: the HTTPS listener is plain HTTP/],
  ['clientCert without ca', receiving('{ type: https, path: /in/adt, auth: none }', 'engine:\n  https: { port: 8443, cert: certs/server.crt, key: certs/server.key, clientCert: require }\n'), /engine\.https\.clientCert: needs ca/],
  ['mtls without client certificates', receiving('{ type: https, path: /in/adt, auth: mtls }'), /channels\[0\]\.source\.auth: mtls needs client certificates/],
  ['a cert file that does not exist', receiving('{ type: https, path: /in/adt, auth: none }', 'engine:\n  https: { port: 8443, cert: certs/nope.crt, key: certs/server.key }\n'), /engine\.https\.cert: file not found: .*certs\/nope\.crt/],
  ['a bad allowIps entry', receiving('{ type: https, path: /in/adt, auth: none, allowIps: [10.0.0.0/33] }'), /channels\[0\]\.source\.allowIps\[0\]: "10\.0\.0\.0\/33": the prefix length must be 0 to 32/],
  ['a bad rateLimit', receiving('{ type: https, path: /in/adt, auth: none, rateLimit: { requests: 0, per: 1s } }'), /rateLimit\.requests: must be at least 1/],
  ['the listener on the admin port', receiving('{ type: https, path: /in/adt, auth: none }', 'engine:\n  https: { port: 8470, cert: certs/server.crt, key: certs/server.key }\n'), /engine\.https\.port: 127\.0\.0\.1:8470 is already taken by the admin API/],
  ['a URL that is not http(s)', sending('{ name: c, type: https, url: "ftp://x/in" }'), /destinations\[0\]\.url: must be an https:\/\/ \(or http:\/\/\) URL/],
  ['a token over plain http', sending('{ name: c, type: https, url: "http://x/in", token: abc }'), /destinations\[0\]\.token: a token must not travel over plain http/],
  ['token and hmac both', sending('{ name: c, type: https, url: "https://x/in", token: abc, hmac: { keyId: k, secret: s } }'), /destinations\[0\]\.hmac: use token or hmac, not both/],
  ['a cert without its key', sending('{ name: c, type: https, url: "https://x/in", cert: certs/clients/a.crt }'), /destinations\[0\]\.cert: a client certificate needs both cert and key/],
  ['a header Ferry sets', sending('{ name: c, type: https, url: "https://x/in", headers: { X-Ferry-Message-Id: x } }'), /headers\.X-Ferry-Message-Id: X-Ferry-Message-Id is set by Ferry/],
  ['an invalid header name', sending('{ name: c, type: https, url: "https://x/in", headers: { "Bad Header": x } }'), /headers\.Bad Header: "Bad Header" is not a valid header name/],
  ['a framing header', sending('{ name: c, type: https, url: "https://x/in", headers: { Transfer-Encoding: chunked } }'), /headers\.Transfer-Encoding: Transfer-Encoding is set by Ferry/],
  ['a header value with a line break', sending('{ name: c, type: https, url: "https://x/in", headers: { X-Site: "north\\r\\nHost: evil.example" } }'), /headers\.X-Site: a header value may hold tab, printable ASCII and Latin-1 characters, no line breaks or other control characters/],
  ['a dynamic URL prefix that is not a URL', sending('{ name: c, type: https, url: "https://x/in", allowDynamicUrl: [x.org] }'), /allowDynamicUrl\[0\]: must be an https:\/\/ \(or http:\/\/\) URL prefix/],
];

for (const [what, text, expected] of invalid) {
  test(`rejected: ${what}`, async (t) => {
    const dir = await configProject(t, PEM);
    t.regex(configProblems(dir, text), expected);
  });
}

test('two channels on one path', async (t) => {
  const dir = await configProject(t, PEM);
  const text = `${LISTENER}channels:
  - name: a
    source: { type: https, path: /in/x, auth: none }
    destinations: [{ name: d, type: file, dir: out }]
  - name: b
    source: { type: https, path: /in/x, auth: none }
    destinations: [{ name: d, type: file, dir: out }]
`;
  t.regex(configProblems(dir, text), /channels\[1\]\.source\.path: path \/in\/x is already used by channel "a"/);
});
