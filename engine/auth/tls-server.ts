import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import { FerryError, errorText } from '../errors.ts';
import { createSerial } from '../serial.ts';

// Ferry's TLS listeners (the HTTPS listener, MLLP over TLS, the admin API), made the same way
// (TLS 1.2 or later; unreadable or unusable files are config errors), and the hot reload of their
// certificate, key and CA: `ferry certs renew` (or any other tool) replaces the files and the running
// listener serves the new pair to new connections, with no restart and no dropped connection. Files
// are polled, not watched: certificates change rarely, often by rename or through symlinks (certbot,
// Kubernetes secrets), which file watches miss.

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string | undefined;
}

interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

export interface CertificateReload {
  stop(): void;
}

const DEFAULT_INTERVAL_MS = 2_000;

/** A server whose certificate can be swapped for new connections (https.Server, tls.Server). */
export interface TlsServer {
  setSecureContext(options: SecureContextOptions): void;
}

/** The secure context every Ferry TLS listener uses, at start and on every reload. */
const serverContext = (material: TlsMaterial): SecureContextOptions => ({ ...material, minVersion: 'TLSv1.2' });

/**
 * A TLS listener made by `create` from the files as they are at start. A file that cannot be read,
 * or a certificate and key that cannot be used, is CONFIG_INVALID naming `setting` ("engine.https").
 */
export const createTlsServer = <T extends TlsServer>(files: TlsFiles, setting: string, create: (context: SecureContextOptions) => T): T => {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (cause) {
      throw new FerryError('CONFIG_INVALID', `${setting}.${what}: cannot read ${file}: ${errorText(cause as Error)}`, { cause });
    }
  };
  const material = { cert: read(files.cert, 'cert'), key: read(files.key, 'key'), ca: files.ca === undefined ? undefined : read(files.ca, 'ca') };
  try {
    return create(serverContext(material));
  } catch (cause) {
    throw new FerryError('CONFIG_INVALID', `${setting}: the certificate or key cannot be used: ${errorText(cause as Error)}`, { cause });
  }
};

const readTlsFiles = async (files: TlsFiles): Promise<TlsMaterial> => {
  const [cert, key, ca] = await Promise.all([readFile(files.cert), readFile(files.key), files.ca === undefined ? undefined : readFile(files.ca)]);
  return { cert, key, ca };
};

/** Changes whenever one of the files is replaced or rewritten. */
const signatureOf = async (files: TlsFiles): Promise<string> => {
  const parts = await Promise.all(
    [files.cert, files.key, files.ca].map(async (file) => {
      if (file === undefined) return '-';
      const stats = await stat(file).catch(() => undefined);
      return stats ? `${stats.ino}:${stats.size}:${stats.mtimeMs}` : 'missing';
    }),
  );
  return parts.join('|');
};

/**
 * Polls `files` every `intervalMs` and serves changed contents to `server`'s new connections; they
 * cannot be used when the key does not match its certificate. Files caught between two writes (a
 * renewal writes the key, then the certificate) are looked at again on the next poll; files that
 * stay unusable are logged once, and the listener keeps its current pair until they change again.
 */
export const reloadCertificates = (options: {
  files: TlsFiles;
  server: TlsServer;
  logger: Logger;
  /** What the files serve, for the log lines: "HTTPS", "MLLP". */
  what: string;
  intervalMs?: number;
}): CertificateReload => {
  const { files, server, logger, what, intervalMs = DEFAULT_INTERVAL_MS } = options;
  let applied: Promise<string> = signatureOf(files);
  /** Files that could not be used once; if they are the same at the next poll, they are refused. */
  let unusable: string | undefined;
  let refused: string | undefined;
  let stopped = false;

  const check = async (): Promise<void> => {
    const next = await signatureOf(files);
    if (next === (await applied) || next === refused || stopped) return;
    try {
      const material = await readTlsFiles(files);
      server.setSecureContext(serverContext(material));
      applied = Promise.resolve(next);
      const validTo = new X509Certificate(material.cert).validTo;
      logger.info({ cert: files.cert, validTo }, `${what} certificate reloaded: new connections get the new one`);
    } catch (error) {
      if (unusable !== next) {
        unusable = next;
        return;
      }
      refused = next;
      logger.error({ err: error, cert: files.cert, key: files.key }, `${what} certificate files changed but cannot be used; keeping the current ones: ${errorText(error as Error)}`);
    }
  };

  // A slow check (a file system that hangs) makes the next ones wait rather than overlap. check never rejects.
  const checks = createSerial();
  const timer = setInterval(() => void checks.run(check), intervalMs).unref();

  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
};
