import type { ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { initCertificates, issueClientCertificate } from '../../engine/auth/certs.ts';
import { tempDir } from '../helpers/temp.ts';

// TLS material and a small client for the HTTPS tests: a CA, a server certificate for 127.0.0.1
// and localhost, client certificates, and a request helper that returns status, headers and body.

export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Client certificates by name (CN). */
  clients: Record<string, { cert: string; key: string }>;
  /** PEM contents, for clients. */
  pem: { ca: Buffer; clients: Record<string, { cert: Buffer; key: Buffer }> };
}

/** Certificates in a temp folder removed after test `t`, or in the folder `t` names. */
export const makeCerts = async (t: ExecutionContext | string, clients: string[] = ['site-a']): Promise<TestCerts> => {
  const dir = typeof t === 'string' ? t : await tempDir(t, 'ferry-certs-');
  const made = await initCertificates({ dir });
  const files: TestCerts['clients'] = {};
  const pemClients: TestCerts['pem']['clients'] = {};
  for (const name of clients) {
    const issued = await issueClientCertificate({ dir, name });
    files[name] = { cert: issued.cert, key: issued.key };
    pemClients[name] = { cert: await readFile(issued.cert), key: await readFile(issued.key) };
  }
  return {
    dir,
    ca: made.ca.cert,
    serverCert: made.server.cert,
    serverKey: made.server.key,
    clients: files,
    pem: { ca: await readFile(made.ca.cert), clients: pemClients },
  };
};

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: Record<string, unknown> | undefined;
}

export interface SendOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: Buffer | string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Write the body in these pieces (chunked when no Content-Length header is given). */
  chunks?: Buffer[];
}

/** One request on a fresh connection; resolves with the reply, or rejects when the connection fails. */
export const send = (url: string, options: SendOptions = {}): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    const headers: OutgoingHttpHeaders = { ...(body ? { 'Content-Length': body.length } : {}), ...options.headers };
    const req = (secure ? httpsRequest : httpRequest)(target, {
      method: options.method ?? 'POST',
      headers,
      agent: false,
      ...(secure ? { ca: options.ca, cert: options.cert, key: options.key } : {}),
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    if (options.chunks) {
      for (const chunk of options.chunks) req.write(chunk);
      req.end();
    } else {
      req.end(body);
    }
  });

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

export type Answer = (req: Received, res: ServerResponse) => void;

export const reply =
  (status: number, body = '', headers: Record<string, string> = {}): Answer =>
  (_req, res) => {
    res.writeHead(status, headers);
    res.end(body);
  };

/** A TLS server (certificate from `certs`) answering with `answers` in turn, the last one repeating; records every request. */
export const farEnd = async (
  t: ExecutionContext,
  certs: TestCerts,
  answers: Answer[],
  /** insecureHTTPParser: a lenient far end, as some proxies are, that records what a strict one refuses (Transfer-Encoding next to Content-Length). */
  options: { requireClientCert?: boolean; insecureHTTPParser?: boolean } = {},
): Promise<{ url: string; received: Received[] }> => {
  const received: Received[] = [];
  const server = createHttpsServer(
    {
      insecureHTTPParser: options.insecureHTTPParser ?? false,
      cert: await readFile(certs.serverCert),
      key: await readFile(certs.serverKey),
      ca: certs.pem.ca,
      requestCert: options.requireClientCert ?? false,
      rejectUnauthorized: options.requireClientCert ?? false,
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
        received.push(request);
        answers[Math.min(received.length - 1, answers.length - 1)]!(request, res);
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
};
