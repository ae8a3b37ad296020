import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { mllpClient, type MllpTlsOptions } from '../../engine/clients/mllp.ts';
import type { MllpListenerTls } from '../../engine/config.ts';
import { encodeFrame } from '../../engine/hl7/mllp.ts';
import { mllpSource, type MllpPeer } from '../../engine/sources/mllp.ts';
import { makeCerts, type TestCerts } from '../https/helpers.ts';
import { captureLogger } from '../helpers/logger.ts';
import { eventually } from '../helpers/temp.ts';

// MLLP over TLS: senders that speak TLS are served as over TCP; plain TCP and, when required,
// clients without a certificate from the CA never reach the handler.

const MESSAGE = 'MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ADT^A01|T1|P|2.5\rPID|1||T1^^^HOSP^MR\r';
const REPLY = 'MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240101120000||ACK|A1|P|2.5\rMSA|AA|T1\r';

const startTlsSource = async (t: ExecutionContext, certs: TestCerts, clientCert: MllpListenerTls['clientCert']) => {
  const { logger, lines } = captureLogger();
  const peers: MllpPeer[] = [];
  const source = mllpSource({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: 64 * 1024,
    idleTimeoutMs: 10_000,
    maxConnections: 10,
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, clientCert },
    logger,
    handle: async (_payload, peer) => {
      peers.push(peer);
      return REPLY;
    },
  });
  t.teardown(() => source.stop());
  const { port } = await source.start();
  return { port, peers, lines };
};

const sendOver = async (port: number, tls: MllpTlsOptions): Promise<string> => {
  const client = mllpClient({ host: '127.0.0.1', port, ackTimeoutMs: 5_000, tls });
  try {
    return (await client.send(MESSAGE)).toString('latin1');
  } finally {
    await client.close();
  }
};

test('over TLS a sender trusting the CA is answered; a plain TCP sender is not, and nothing reaches the handler', async (t) => {
  const certs = await makeCerts(t);
  const { port, peers, lines } = await startTlsSource(t, certs, 'none');
  t.is(await sendOver(port, { ca: certs.pem.ca }), REPLY);
  t.is(peers.length, 1);
  t.is(peers[0]!.clientName, undefined, 'no client certificate was asked for');

  const plain = net.connect(port, '127.0.0.1');
  plain.on('error', () => undefined);
  await once(plain, 'connect');
  plain.write(encodeFrame(MESSAGE));
  const received: Buffer[] = [];
  plain.on('data', (chunk: Buffer) => received.push(chunk));
  await once(plain, 'close');
  t.false(Buffer.concat(received).includes('MSA|'), 'no ACK in the clear');
  t.is(peers.length, 1);
  await eventually(() => lines.find((l) => /^MLLP TLS handshake failed: /.test(l.msg)), 5_000, 'the handshake failure to be logged');
});

test('clientCert: require admits only senders with a certificate from the CA, and names them', async (t) => {
  const certs = await makeCerts(t, ['site-a']);
  const other = await makeCerts(t, ['intruder']);
  const { port, peers } = await startTlsSource(t, certs, 'require');
  const siteA = certs.pem.clients['site-a']!;
  t.is(await sendOver(port, { ca: certs.pem.ca, cert: siteA.cert, key: siteA.key }), REPLY);
  t.is(peers[0]!.clientName, 'site-a');

  await t.throwsAsync(sendOver(port, { ca: certs.pem.ca }), undefined, 'no certificate');
  const intruder = other.pem.clients['intruder']!;
  await t.throwsAsync(sendOver(port, { ca: certs.pem.ca, cert: intruder.cert, key: intruder.key }), undefined, "another CA's certificate");
  t.is(peers.length, 1, 'refused senders never reach the handler');
});
