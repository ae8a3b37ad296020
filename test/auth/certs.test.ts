import test, { type ExecutionContext } from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { createServer, request, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type PeerCertificate, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { initCertificates, issueClientCertificate } from '../../engine/auth/certs.ts';
import { checkServerIdentity } from '../../engine/auth/server-identity.ts';
import { mllpClient } from '../../engine/clients/mllp.ts';
import { FerryError } from '../../engine/errors.ts';
import { encodeFrame } from '../../engine/hl7/mllp.ts';
import { tempDir } from '../helpers/temp.ts';

// The private CA on real files, judged by Node's own TLS (and openssl where it is installed): who
// the server certificate is valid for, which client certificates a server with requestCert
// accepts, file modes, and refusals to overwrite.

const execFileAsync = promisify(execFile);

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const YEAR_MS = 365.25 * 24 * 3600 * 1000;

const x509 = async (file: string): Promise<X509Certificate> => new X509Certificate(await readFile(file));
const mode = async (file: string): Promise<number> => (await stat(file)).mode & 0o777;

/** A CA with a server certificate and one client certificate, in a temp folder. */
const pki = async (t: ExecutionContext, options: { hosts?: string[]; client?: string } = {}) => {
  const dir = await tempDir(t, 'ferry-certs-');
  const made = await initCertificates({ dir, ...(options.hosts ? { hosts: options.hosts } : {}) });
  const client = await issueClientCertificate({ dir, name: options.client ?? 'site-a' });
  return { dir, ...made, client };
};

/** An HTTPS server that asks for a client certificate (never refusing the handshake) and reports how TLS judged it. */
const judge = async (t: ExecutionContext, options: ServerOptions): Promise<number> => {
  const server = createServer({ ...options, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ authorized: socket.authorized, error: socket.authorizationError ?? null, cn: peer.subject?.CN ?? null }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
};

interface Judgement {
  authorized: boolean;
  error: string | null;
  cn: string | null;
}

const get = (port: number, options: { servername?: string; ca?: Buffer; cert?: Buffer; key?: Buffer }): Promise<Judgement> =>
  new Promise((resolve, reject) => {
    // Always 127.0.0.1; `servername` is the name the client then checks the server certificate against.
    const req = request({ host: '127.0.0.1', port, path: '/', ...options, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve(JSON.parse(text) as Judgement));
    });
    req.on('error', reject);
    req.end();
  });

test('init writes a CA and a server certificate: modes, lifetimes, usages, chain', async (t) => {
  const { dir, ca, server } = await pki(t);
  t.deepEqual([ca.key, ca.cert, server.key, server.cert], ['ca.key', 'ca.crt', 'server.key', 'server.crt'].map((f) => join(dir, f)));
  t.deepEqual(await Promise.all([ca.key, ca.cert, server.key, server.cert].map(mode)), [0o600, 0o644, 0o600, 0o644]);
  t.regex(await readFile(ca.key, 'utf8'), /^-----BEGIN RSA PRIVATE KEY-----/);

  const caCert = await x509(ca.cert);
  const serverCert = await x509(server.cert);
  t.true(caCert.ca);
  t.regex(caCert.subject, /CN=Ferry CA \(.+\)/);
  t.false(serverCert.ca);
  t.true(serverCert.checkIssued(caCert));
  t.true(serverCert.verify(caCert.publicKey));
  t.true(caCert.verify(caCert.publicKey), 'the CA is self-signed');
  t.deepEqual(serverCert.keyUsage, [SERVER_AUTH]);
  t.is(serverCert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  t.is(serverCert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');

  const years = (cert: X509Certificate): number => (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / YEAR_MS;
  t.true(Math.abs(years(caCert) - 10) < 0.01, `CA lasts ${years(caCert)} years`);
  t.true(Math.abs(years(serverCert) - 2) < 0.01, `server lasts ${years(serverCert)} years`);
  t.true(Date.parse(serverCert.validFrom) <= Date.now(), 'valid from now (a minute back, for clock skew)');
  t.is(ca.notAfter.getTime(), Date.parse(caCert.validTo));
});

test('the server certificate validates for each host it names, and for no other', async (t) => {
  const { server } = await pki(t, { hosts: ['ferry.example.org', 'localhost', '10.1.2.3', '::1', '127.0.0.1'] });
  const cert = await x509(server.cert);
  t.is(cert.subjectAltName, 'DNS:ferry.example.org, DNS:localhost, IP Address:10.1.2.3, IP Address:0:0:0:0:0:0:0:1, IP Address:127.0.0.1');
  t.regex(cert.subject, /CN=ferry\.example\.org/);
  const peer = { subject: { CN: 'ferry.example.org' }, subjectaltname: cert.subjectAltName, raw: cert.raw } as unknown as PeerCertificate;
  for (const host of ['ferry.example.org', 'localhost', '10.1.2.3', '::1', '0:0::1', '127.0.0.1']) t.is(checkServerIdentity(host, peer), undefined, host);
  for (const host of ['other.example.org', 'example.org', '10.1.2.4', '127.0.0.2', '::2']) t.truthy(checkServerIdentity(host, peer), host);
});

test('real TLS to ::1: Ferry\'s MLLP client accepts a certificate naming ::1 and refuses a trusted one that does not', async (t) => {
  // An IPv6 literal is where Node 22's own check goes wrong (engine/auth/server-identity.ts).
  const named = await pki(t, { hosts: ['::1'] });
  const other = await pki(t, { hosts: ['localhost'] });
  const frames: string[] = [];
  /** An MLLP peer on ::1 presenting `made`'s server certificate, answering AA to every frame. */
  const serve = async (made: Awaited<ReturnType<typeof pki>>): Promise<number> => {
    const server = createTlsServer({ key: await readFile(made.server.key), cert: await readFile(made.server.cert) }, (socket) =>
      socket.on('data', (chunk) => {
        frames.push(chunk.toString('latin1'));
        socket.write(encodeFrame('MSH|^~\\&|B|B|A|A|20240101||ACK|1|P|2.5\rMSA|AA|1\r'));
      }),
    );
    server.listen(0, '::1');
    await once(server, 'listening');
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return (server.address() as AddressInfo).port;
  };
  const send = async (port: number, ca: string): Promise<string> => {
    const client = mllpClient({ host: '::1', port, ackTimeoutMs: 10_000, tls: { ca: await readFile(ca) } });
    try {
      return (await client.send('MSH|^~\\&|A|A|B|B|20240101||ADT^A01|1|P|2.5\r')).toString('latin1');
    } finally {
      await client.close();
    }
  };
  t.regex(await send(await serve(named), named.ca.cert), /^MSH\|.*\rMSA\|AA\|1\r$/);
  t.is(frames.length, 1);
  // Trusted CA, but the certificate names localhost only: refused for the name, before anything is sent.
  const refused = await t.throwsAsync(send(await serve(other), other.ca.cert));
  t.regex(refused!.message, /altnames/);
  t.is(frames.length, 1, 'nothing was sent to a server whose certificate does not name ::1');
});

test('default hosts: localhost and 127.0.0.1 pass the server identity check', async (t) => {
  const { server } = await pki(t);
  const cert = await x509(server.cert);
  const peer = { subject: { CN: 'localhost' }, subjectaltname: cert.subjectAltName, raw: cert.raw } as unknown as PeerCertificate;
  t.is(checkServerIdentity('localhost', peer), undefined);
  t.is(checkServerIdentity('127.0.0.1', peer), undefined);
  t.is(checkServerIdentity('example.com', peer)?.message, "Hostname/IP does not match certificate's altnames: Host: example.com. is not in the cert's altnames: DNS:localhost, IP Address:127.0.0.1");
});

test('issue writes a client certificate for clientAuth, CN = name, signed by the CA', async (t) => {
  const { dir, ca, client } = await pki(t, { client: 'site-a' });
  t.deepEqual([client.key, client.cert], [join(dir, 'clients', 'site-a.key'), join(dir, 'clients', 'site-a.crt')]);
  t.deepEqual(await Promise.all([client.key, client.cert].map(mode)), [0o600, 0o644]);
  const cert = await x509(client.cert);
  t.regex(cert.subject, /^CN=site-a$/m);
  t.deepEqual(cert.keyUsage, [CLIENT_AUTH]);
  t.true(cert.checkIssued(await x509(ca.cert)));
  t.true(cert.verify((await x509(ca.cert)).publicKey));
});

test('real TLS: the right client certificate is authorized; another CA\'s is not; none is not', async (t) => {
  const ours = await pki(t, { client: 'site-a' });
  const theirs = await pki(t, { client: 'intruder' });
  const port = await judge(t, { key: await readFile(ours.server.key), cert: await readFile(ours.server.cert), ca: await readFile(ours.ca.cert) });
  const ca = await readFile(ours.ca.cert);

  t.deepEqual(await get(port, { ca, cert: await readFile(ours.client.cert), key: await readFile(ours.client.key) }), {
    authorized: true,
    error: null,
    cn: 'site-a',
  });
  const foreign = await get(port, { ca, cert: await readFile(theirs.client.cert), key: await readFile(theirs.client.key) });
  t.like(foreign, { authorized: false, cn: 'intruder' });
  t.truthy(foreign.error);
  t.like(await get(port, { ca }), { authorized: false, cn: null });

  // The client side checks the server too: by host name, and against the CA it trusts.
  t.like(await get(port, { ca, servername: 'localhost' }), { authorized: false });
  await t.throwsAsync(get(port, { ca, servername: 'ferry.example.org' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  // The server sends its CA along (OpenSSL completes the chain from the server's `ca`), so the
  // error names a self-signed certificate the client does not trust.
  await t.throwsAsync(get(port, { ca: await readFile(theirs.ca.cert) }), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  await t.throwsAsync(get(port, {}), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
});

const openssl = spawnSync('openssl', ['version']).status === 0;

(openssl ? test : test.skip)('openssl verify accepts the chain for its purpose, and refuses another CA\'s certificate', async (t) => {
  const ours = await pki(t);
  const theirs = await pki(t);
  const verify = (...args: string[]) => execFileAsync('openssl', ['verify', '-CAfile', ours.ca.cert, ...args]);
  t.is((await verify('-purpose', 'sslserver', ours.server.cert)).stdout, `${ours.server.cert}: OK\n`);
  t.is((await verify('-purpose', 'sslclient', ours.client.cert)).stdout, `${ours.client.cert}: OK\n`);
  t.is((await verify('-purpose', 'sslserver', '-verify_hostname', 'localhost', ours.server.cert)).stdout, `${ours.server.cert}: OK\n`);
  t.is((await verify('-purpose', 'sslserver', '-verify_ip', '127.0.0.1', ours.server.cert)).stdout, `${ours.server.cert}: OK\n`);
  const wrongPurpose = await t.throwsAsync(verify('-purpose', 'sslserver', ours.client.cert));
  t.regex(String((wrongPurpose as { stdout?: string }).stdout) + String((wrongPurpose as { stderr?: string }).stderr), /unsuitable certificate purpose/);
  const foreign = await t.throwsAsync(verify(theirs.client.cert));
  t.regex(String((foreign as { stderr?: string }).stderr), /unable to get local issuer certificate/);
});

test('init refuses to overwrite any existing file; force replaces them all', async (t) => {
  const { dir, ca, server } = await pki(t);
  const before = await readFile(ca.key, 'utf8');
  const error = await t.throwsAsync(initCertificates({ dir }), { instanceOf: FerryError });
  t.is(error?.code, 'CERT_EXISTS');
  t.deepEqual(error?.details?.['files'], [ca.key, ca.cert, server.key, server.cert]);
  t.is(await readFile(ca.key, 'utf8'), before);

  const again = await initCertificates({ dir, force: true, hosts: ['engine-b'] });
  t.not(await readFile(ca.key, 'utf8'), before);
  t.is((await x509(again.server.cert)).subjectAltName, 'DNS:engine-b');
  t.is(await mode(again.ca.key), 0o600);
});

test('issue refuses an existing client, a missing CA, and names that are not file names', async (t) => {
  const { dir } = await pki(t, { client: 'site-a' });
  const exists = await t.throwsAsync(issueClientCertificate({ dir, name: 'site-a' }), { instanceOf: FerryError });
  t.is(exists?.code, 'CERT_EXISTS');
  t.truthy(await issueClientCertificate({ dir, name: 'site-a', force: true }));

  const empty = await tempDir(t);
  const missing = await t.throwsAsync(issueClientCertificate({ dir: empty, name: 'x' }), { instanceOf: FerryError, message: /run ferry certs init first/ });
  t.is(missing?.code, 'CERT_CA_MISSING');
  for (const name of ['../evil', 'a/b', '', '-x']) {
    const bad = await t.throwsAsync(issueClientCertificate({ dir, name }), { instanceOf: FerryError });
    t.is(bad?.code, 'CLI_USAGE', name);
  }
});

test('init refuses hosts that are neither IP addresses nor DNS names', async (t) => {
  const dir = await tempDir(t);
  for (const hosts of [['bad host'], ['http://x'], ['a..b'], []]) {
    const error = await t.throwsAsync(initCertificates({ dir, hosts }), { instanceOf: FerryError });
    t.is(error?.code, 'CLI_USAGE', hosts.join(','));
  }
});
