import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { errorText } from '../errors.ts';

// Hot reload of a TLS listener's certificate, key and CA (the HTTPS listener, MLLP over TLS):
// `ferry certs renew` (or any other tool) replaces the files and the running listener serves the
// new pair to new connections, with no restart and no dropped connection. Files are polled, not
// watched: certificates change rarely, often by rename or through symlinks (certbot, Kubernetes
// secrets), which file watches miss.

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string | undefined;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

export interface CertificateReload {
  stop(): void;
}

const DEFAULT_INTERVAL_MS = 2_000;

/** The secure context every Ferry TLS listener uses, at start and on every reload. */
export const serverContext = (material: TlsMaterial): TlsMaterial & { minVersion: 'TLSv1.2' } => ({ ...material, minVersion: 'TLSv1.2' });

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
 * Polls `files` every `intervalMs` and hands changed contents to `apply`, which throws when they
 * cannot be used (a key that does not match its certificate). Files caught between two writes (a
 * renewal writes the key, then the certificate) are looked at again on the next poll; files that
 * stay unusable are logged once, and the listener keeps its current pair until they change again.
 */
export const reloadCertificates = (options: {
  files: TlsFiles;
  apply: (material: TlsMaterial) => void;
  logger: Logger;
  /** What the files serve, for the log lines: "HTTPS", "MLLP". */
  what: string;
  intervalMs?: number;
}): CertificateReload => {
  const { files, apply, logger, what, intervalMs = DEFAULT_INTERVAL_MS } = options;
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
      apply(material);
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

  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(check, check);
  }, intervalMs).unref();

  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
};
