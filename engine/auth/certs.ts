// A private certificate authority for engine-to-engine HTTPS (`ferry certs init | renew | issue`):
// one CA, a server certificate for the receiving engine (renewed from the same CA), and client
// certificates for senders when the receiver asks for them (clientCert: require). Built with
// node-forge, which hands RSA key generation to Node's native crypto: 2048-bit keys take ~0.1–0.3 s,
// 4096-bit ~1.1 s (pure-JS forge: ~1 s and ~7 s). RSA 2048 is what NIST accepts through 2030 and
// what every TLS stack speaks.
//
//   <dir>/ca.key ca.crt                     CA, 10 years, may only sign certificates
//   <dir>/server.key server.crt             2 years, serverAuth, SANs = the given hosts
//   <dir>/clients/<name>.key <name>.crt     2 years, clientAuth, CN = name
//
// Keys are written mode 0600, certificates 0644.

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { FerryError } from '../errors.ts';
import { writeFileAtomic } from './atomic-file.ts';

const { pki } = forge;

const KEY_BITS = 2048;
const CA_YEARS = 10;
const LEAF_YEARS = 2;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;

const defaultCertHosts = ['localhost', '127.0.0.1'] as const;

const dnsName = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const clientName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const generateKeys = (): Promise<forge.pki.rsa.KeyPair> =>
  new Promise((resolve, reject) => {
    // The callback form is the one forge runs on Node's native (and non-blocking) generateKeyPair.
    pki.rsa.generateKeyPair({ bits: KEY_BITS }, (error, keys) => (error ? reject(error) : resolve(keys)));
  });

/** A positive 128-bit serial with no leading zero byte (strict DER parsers reject non-minimal integers). */
const serialNumber = (): string => {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
};

const newCertificate = (publicKey: forge.pki.PublicKey, years: number): forge.pki.Certificate => {
  const cert = pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  // A minute back: a peer whose clock runs slightly behind still sees the certificate as valid.
  // Whole seconds, as X.509 stores them, so the dates returned are the certificate's own.
  cert.validity.notBefore = new Date(Math.floor((Date.now() - 60_000) / 1000) * 1000);
  cert.validity.notAfter = new Date(cert.validity.notBefore);
  cert.validity.notAfter.setFullYear(cert.validity.notAfter.getFullYear() + years);
  return cert;
};

const exists = (file: string): Promise<boolean> => stat(file).then(() => true, () => false);

const refuseExisting = async (files: string[], force: boolean): Promise<void> => {
  if (force) return;
  const present = [];
  for (const file of files) if (await exists(file)) present.push(file);
  if (present.length > 0) {
    throw new FerryError('CERT_EXISTS', `refusing to overwrite ${present.join(', ')} (pass --force to replace them)`, {
      details: { files: present },
    });
  }
};

export interface CertificateFiles {
  key: string;
  cert: string;
  notAfter: Date;
}

export interface InitCertificatesOptions {
  dir: string;
  /** DNS names and IP addresses the server certificate is valid for; default localhost and 127.0.0.1. */
  hosts?: readonly string[];
  /** Replace existing files (every client certificate of the old CA stops working). */
  force?: boolean;
}

export interface InitializedCertificates {
  ca: CertificateFiles & { subject: string };
  server: CertificateFiles & { hosts: string[] };
}

/** Distinct, valid host names and addresses for a server certificate. */
const serverNames = (hosts: readonly string[]): string[] => {
  const names = [...new Set(hosts)];
  if (names.length === 0) throw new FerryError('CLI_USAGE', 'the server certificate needs at least one host');
  for (const host of names) {
    if (!isIP(host) && !dnsName.test(host)) throw new FerryError('CLI_USAGE', `"${host}" is neither an IP address nor a DNS name`);
  }
  return names;
};

/** A serverAuth certificate whose SANs are `names` (the first is also its CN). */
const serverLeaf = (ca: forge.pki.Certificate, caKey: forge.pki.rsa.PrivateKey, publicKey: forge.pki.PublicKey, names: string[]): forge.pki.Certificate =>
  signedLeaf(ca, caKey, publicKey, names[0]!, [
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: names.map((host) => (isIP(host) ? { type: 7, ip: host } : { type: 2, value: host })),
    },
  ]);

/** The CA that `initCertificates` wrote to `dir`. */
const loadCa = async (dir: string): Promise<{ ca: forge.pki.Certificate; caKey: forge.pki.rsa.PrivateKey }> => {
  try {
    return {
      ca: pki.certificateFromPem(await readFile(path.join(dir, 'ca.crt'), 'utf8')),
      caKey: pki.privateKeyFromPem(await readFile(path.join(dir, 'ca.key'), 'utf8')) as forge.pki.rsa.PrivateKey,
    };
  } catch (cause) {
    throw new FerryError('CERT_CA_MISSING', `no usable CA in ${dir} (ca.crt and ca.key; run ferry certs init first)`, { cause });
  }
};

/** Creates the CA and the server certificate in `dir`; refuses (CERT_EXISTS) to overwrite unless `force`. */
export const initCertificates = async ({ dir, hosts = defaultCertHosts, force = false }: InitCertificatesOptions): Promise<InitializedCertificates> => {
  const names = serverNames(hosts);
  const files = {
    caKey: path.join(dir, 'ca.key'),
    caCert: path.join(dir, 'ca.crt'),
    serverKey: path.join(dir, 'server.key'),
    serverCert: path.join(dir, 'server.crt'),
  };
  await refuseExisting(Object.values(files), force);

  const [caKeys, serverKeys] = await Promise.all([generateKeys(), generateKeys()]);
  const ca = newCertificate(caKeys.publicKey, CA_YEARS);
  const caSubject = [
    // The host name tells several engines' CAs apart in a trust store.
    { name: 'commonName', value: `Ferry CA (${os.hostname()})` },
    { name: 'organizationName', value: 'Ferry' },
  ];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const server = serverLeaf(ca, caKeys.privateKey, serverKeys.publicKey, names);

  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(files.caKey, pki.privateKeyToPem(caKeys.privateKey), KEY_MODE);
  await writeFileAtomic(files.caCert, pki.certificateToPem(ca), CERT_MODE);
  await writeFileAtomic(files.serverKey, pki.privateKeyToPem(serverKeys.privateKey), KEY_MODE);
  await writeFileAtomic(files.serverCert, pki.certificateToPem(server), CERT_MODE);
  return {
    ca: { key: files.caKey, cert: files.caCert, notAfter: ca.validity.notAfter, subject: caSubject[0]!.value },
    server: { key: files.serverKey, cert: files.serverCert, notAfter: server.validity.notAfter, hosts: names },
  };
};

/** A certificate signed by the CA, for `commonName`, with `extensions` on top of the common ones. */
const signedLeaf = (
  ca: forge.pki.Certificate,
  caKey: forge.pki.rsa.PrivateKey,
  publicKey: forge.pki.PublicKey,
  commonName: string,
  extensions: object[],
): forge.pki.Certificate => {
  const cert = newCertificate(publicKey, LEAF_YEARS);
  cert.setSubject([{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'Ferry' }]);
  cert.setIssuer(ca.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    ...extensions,
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return cert;
};

export interface IssueClientCertificateOptions {
  dir: string;
  /** The certificate's CN, and its file names under <dir>/clients/. */
  name: string;
  force?: boolean;
}

/** Issues `<dir>/clients/<name>.key|.crt` (clientAuth, CN = name) signed by the CA of `initCertificates`. */
export const issueClientCertificate = async ({ dir, name, force = false }: IssueClientCertificateOptions): Promise<CertificateFiles> => {
  if (!clientName.test(name)) {
    throw new FerryError('CLI_USAGE', `client name "${name}" must be 1 to 63 characters of A-Z, a-z, 0-9, ".", "-" and "_", starting with a letter or digit`);
  }
  const { ca, caKey } = await loadCa(dir);
  const clients = path.join(dir, 'clients');
  const files = { key: path.join(clients, `${name}.key`), cert: path.join(clients, `${name}.crt`) };
  await refuseExisting(Object.values(files), force);

  const keys = await generateKeys();
  const cert = signedLeaf(ca, caKey, keys.publicKey, name, [{ name: 'extKeyUsage', clientAuth: true }]);
  await mkdir(clients, { recursive: true, mode: 0o700 });
  await writeFileAtomic(files.key, pki.privateKeyToPem(keys.privateKey), KEY_MODE);
  await writeFileAtomic(files.cert, pki.certificateToPem(cert), CERT_MODE);
  return { ...files, notAfter: cert.validity.notAfter };
};

export interface RenewServerCertificateOptions {
  dir: string;
  /** Default: the names of the server certificate being replaced (or localhost and 127.0.0.1 when there is none). */
  hosts?: string[];
}

export interface RenewedServerCertificate extends CertificateFiles {
  hosts: string[];
  /** When the replaced certificate expired; null when there was none. */
  replacedNotAfter: Date | null;
}

/**
 * Issues a new server key and certificate signed by the existing CA, replacing server.key|.crt: for
 * renewal before the 2 years run out, or for new host names. Senders trust the CA, not the server
 * certificate, so they need no change; a running engine picks the new pair up by itself.
 */
export const renewServerCertificate = async ({ dir, hosts }: RenewServerCertificateOptions): Promise<RenewedServerCertificate> => {
  const { ca, caKey } = await loadCa(dir);
  const files = { key: path.join(dir, 'server.key'), cert: path.join(dir, 'server.crt') };
  // With new names given, a broken old certificate is just replaced; without, its names are needed.
  const replaced = await readCertificate(files.cert).catch((error: unknown) => {
    if (hosts) return undefined;
    throw error;
  });
  const names = serverNames(hosts ?? (replaced ? namesOf(replaced) : defaultCertHosts));
  const keys = await generateKeys();
  const cert = serverLeaf(ca, caKey, keys.publicKey, names);
  // The key first: a crash between the two leaves a pair that does not match, which the engine refuses
  // at start and a rerun of this command repairs; never a certificate for a key that was not written.
  await writeFileAtomic(files.key, pki.privateKeyToPem(keys.privateKey), KEY_MODE);
  await writeFileAtomic(files.cert, pki.certificateToPem(cert), CERT_MODE);
  return { ...files, notAfter: cert.validity.notAfter, hosts: names, replacedNotAfter: replaced?.validity.notAfter ?? null };
};

/** The DNS names and IP addresses a certificate's subjectAltName lists, in order. */
const namesOf = (cert: forge.pki.Certificate): string[] => {
  const san = cert.getExtension('subjectAltName') as { altNames?: Array<{ type: number; value?: string; ip?: string }> } | null;
  return (san?.altNames ?? []).flatMap((name) => (name.type === 7 && name.ip ? [name.ip] : name.type === 2 && name.value ? [name.value] : []));
};

/** The certificate in `file`, or undefined when there is no such file. */
const readCertificate = async (file: string): Promise<forge.pki.Certificate | undefined> => {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FerryError('CERT_UNREADABLE', `cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
  try {
    return pki.certificateFromPem(pem);
  } catch (cause) {
    throw new FerryError('CERT_UNREADABLE', `${file} is not a PEM certificate: ${(cause as Error).message}`, { cause });
  }
};
