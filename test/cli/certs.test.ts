import test from 'ava';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runFerry } from '../helpers/engine-process.ts';
import { tempDir } from '../helpers/temp.ts';

// `ferry certs init | renew | issue` as processes: the files they write, what they print, and refusals.

const date = /\d{4}-\d\d-\d\d/.source;

test('init with defaults, refuse a second init, --force with --host; issue a client', async (t) => {
  const dir = await tempDir(t, 'ferry-cli-certs-');
  const init = await runFerry(['certs', 'init'], { cwd: dir });
  t.is(init.code, 0, init.stderr);
  const lines = init.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, new RegExp(`^created certs/ca\\.crt and certs/ca\\.key: CA "Ferry CA \\(.+\\)", valid until ${date}$`));
  t.regex(lines[1]!, new RegExp(`^created certs/server\\.crt and certs/server\\.key: server certificate for localhost, 127\\.0\\.0\\.1, valid until ${date}$`));
  t.is(lines[2], 'receiver: engine.https: { cert: certs/server.crt, key: certs/server.key, ca: certs/ca.crt }; senders trust certs/ca.crt (ca:)');
  t.is((await stat(join(dir, 'certs', 'server.key'))).mode & 0o777, 0o600);
  const firstCa = await readFile(join(dir, 'certs', 'ca.crt'), 'utf8');

  const again = await runFerry(['certs', 'init'], { cwd: dir });
  t.is(again.code, 1);
  t.regex(again.stderr, /^ferry: CERT_EXISTS: refusing to overwrite .*ca\.key, .*ca\.crt, .*server\.key, .*server\.crt \(pass --force to replace them\)\n$/);
  t.is(await readFile(join(dir, 'certs', 'ca.crt'), 'utf8'), firstCa);

  const forced = await runFerry(['certs', 'init', '--force', '--host', 'central.example.org,10.0.0.5', '--host', 'localhost'], { cwd: dir });
  t.is(forced.code, 0, forced.stderr);
  t.regex(forced.stdout, /server certificate for central\.example\.org, 10\.0\.0\.5, localhost, valid until/);
  t.not(await readFile(join(dir, 'certs', 'ca.crt'), 'utf8'), firstCa);
  const server = new X509Certificate(await readFile(join(dir, 'certs', 'server.crt')));
  t.is(server.subjectAltName, 'DNS:central.example.org, IP Address:10.0.0.5, DNS:localhost');

  // Renewal: a new server key and certificate from the same CA, for the same names unless --host says otherwise.
  const caBefore = await readFile(join(dir, 'certs', 'ca.crt'), 'utf8');
  const keyBefore = await readFile(join(dir, 'certs', 'server.key'), 'utf8');
  const renew = await runFerry(['certs', 'renew'], { cwd: dir });
  t.is(renew.code, 0, renew.stderr);
  t.is(
    renew.stdout.replaceAll(new RegExp(date, 'g'), 'DATE'),
    'created certs/server.crt and certs/server.key: server certificate for central.example.org, 10.0.0.5, localhost, valid until DATE; replaced the one valid until DATE\n' +
      'signed by the same CA: senders need no change; a running engine loads the new pair within seconds\n',
  );
  t.is(await readFile(join(dir, 'certs', 'ca.crt'), 'utf8'), caBefore);
  t.not(await readFile(join(dir, 'certs', 'server.key'), 'utf8'), keyBefore);
  t.is((await stat(join(dir, 'certs', 'server.key'))).mode & 0o777, 0o600);
  const renewed = new X509Certificate(await readFile(join(dir, 'certs', 'server.crt')));
  t.is(renewed.subjectAltName, server.subjectAltName);
  t.not(renewed.serialNumber, server.serialNumber);
  t.true(renewed.checkIssued(new X509Certificate(caBefore)));
  t.true(renewed.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'certs', 'server.key')))));
  const moved = await runFerry(['certs', 'renew', '--host', 'engine2.example.org'], { cwd: dir });
  t.is(moved.code, 0, moved.stderr);
  t.is(new X509Certificate(await readFile(join(dir, 'certs', 'server.crt'))).subjectAltName, 'DNS:engine2.example.org');

  const issue = await runFerry(['certs', 'issue', 'site-a'], { cwd: dir });
  t.is(issue.code, 0, issue.stderr);
  t.is(
    issue.stdout.replace(new RegExp(date), 'DATE'),
    'created certs/clients/site-a.crt and certs/clients/site-a.key: client certificate CN=site-a, valid until DATE\nsender: destination cert: certs/clients/site-a.crt, key: certs/clients/site-a.key\n',
  );
  const client = new X509Certificate(await readFile(join(dir, 'certs', 'clients', 'site-a.crt')));
  t.true(client.checkIssued(new X509Certificate(await readFile(join(dir, 'certs', 'ca.crt')))));
  t.is((await stat(join(dir, 'certs', 'clients', 'site-a.key'))).mode & 0o777, 0o600);
});

test('--dir, and the mistakes: issue before init, bad host, bad name, stray arguments', async (t) => {
  const dir = await tempDir(t, 'ferry-cli-certs-');
  await writeFile(join(dir, 'a-file'), '');
  const cases: Array<[string[], number, RegExp]> = [
    [['certs', 'issue', 'site-a', '--dir', 'pki'], 1, /^ferry: CERT_CA_MISSING: no usable CA in pki \(ca\.crt and ca\.key; run ferry certs init first\)\n$/],
    [['certs', 'init', '--host', 'not a host'], 2, /^ferry: CLI_USAGE: "not a host" is neither an IP address nor a DNS name\n$/],
    [['certs', 'init', 'extra'], 2, /ferry certs init takes no name/],
    [['certs', 'issue'], 2, /ferry certs issue needs one <name>/],
    [['certs', 'rotate'], 2, /ferry certs needs init, renew or issue \(got "rotate"\)/],
    [['certs', 'renew'], 1, /^ferry: CERT_CA_MISSING: no usable CA in certs /],
    [['certs', 'renew', 'extra'], 2, /ferry certs renew takes no name/],
    [['certs', 'renew', '--force'], 2, /ferry certs renew takes no --force/],
    // The system's own refusal (a file where a folder should be): its one line, no stack trace.
    [['certs', 'init', '--dir', 'a-file/certs'], 1, /^ferry: ENOTDIR: not a directory, mkdir '.*a-file\/certs'\n$/],
  ];
  for (const [args, code, stderr] of cases) {
    const result = await runFerry(args, { cwd: dir });
    t.is(result.code, code, args.join(' '));
    t.regex(result.stderr, stderr, args.join(' '));
  }
  const init = await runFerry(['certs', 'init', '--dir', 'pki'], { cwd: dir });
  t.is(init.code, 0, init.stderr);
  t.regex(init.stdout, /^created pki\/ca\.crt and pki\/ca\.key/);
  const bad = await runFerry(['certs', 'issue', '../x', '--dir', 'pki'], { cwd: dir });
  t.is(bad.code, 2);
  t.regex(bad.stderr, /CLI_USAGE: client name "\.\.\/x" must be 1 to 63 characters/);
});
