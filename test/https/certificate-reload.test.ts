import test from 'ava';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { renewServerCertificate } from '../../engine/auth/certs.ts';
import { httpsListener } from '../../engine/http/https-listener.ts';
import { captureLogger } from '../helpers/logger.ts';
import { eventually } from '../helpers/temp.ts';
import { makeCerts, send } from './helpers.ts';

// The listener serves a renewed certificate without a restart, and keeps serving the current one
// when the files change into something unusable (a key that does not match its certificate).

/** The serial number of the certificate the listener presents to a new connection. */
const servedSerial = (port: number, ca: Buffer): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });

test('ferry certs renew is picked up by a running listener; an unusable change is refused and logged', async (t) => {
  const certs = await makeCerts(t, ['site-a']);
  const { logger, lines } = captureLogger();
  const listener = httpsListener({
    config: { host: '127.0.0.1', port: 0, plain: false, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, clientCert: 'none' },
    paths: ['/in/adt'],
    logger,
  });
  const { port, url } = await listener.start();
  t.teardown(() => listener.stop());
  const first = await servedSerial(port, certs.pem.ca);

  // New connections get the new pair.
  const renewed = await renewServerCertificate({ dir: certs.dir });
  t.deepEqual(renewed.hosts, ['localhost', '127.0.0.1'], 'the names of the replaced certificate');
  const second = await eventually(async () => {
    const serial = await servedSerial(port, certs.pem.ca);
    return serial !== first ? serial : undefined;
  }, 15_000, 'the renewed certificate to be served');
  t.truthy(lines.find((l) => l.msg === 'HTTPS certificate reloaded: new connections get the new one' && l['cert'] === certs.serverCert));
  t.is((await send(`${url}/in/adt`, { ca: certs.pem.ca, body: 'x' })).status, 503, 'requests are served (the path has no channel)');

  // A client's key over server.key: it does not match server.crt.
  await copyFile(certs.clients['site-a']!.key, join(certs.dir, 'server.key'));
  const refused = await eventually(() => lines.find((l) => l.level === 50 && /^HTTPS certificate files changed but cannot be used; keeping the current ones: /.test(l.msg)), 15_000, 'the refusal');
  t.is(refused['key'], certs.serverKey);
  t.is(await servedSerial(port, certs.pem.ca), second, 'still the renewed certificate');

  // Renewing again repairs it.
  await renewServerCertificate({ dir: certs.dir });
  await eventually(async () => ((await servedSerial(port, certs.pem.ca)) !== second ? true : undefined), 15_000, 'the repaired pair to be served');
});
