// POSTs each output to a URL (another Ferry's HTTPS source, or any API). The outcome decides the
// retry, by class: 2xx is sent (unless a JSON reply says "Success": false); 408, 425, 429, 5xx,
// connection failures and timeouts are transient and retried (Retry-After is passed on as
// retryAfterMs); any other 4xx is permanent: the message goes to error with the response
// kept, and an alert line is logged. TLS is always verified, against `ca` when one is given.
import { Type } from '@sinclair/typebox';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import { signRequest } from '../auth/hmac.ts';
import { checkServerIdentity } from '../auth/server-identity.ts';
import type { DestinationConfig } from '../config/contract.ts';
import { Duration, Path, Tag, durationMs, entry, resolveOptional } from '../config/units.ts';
import type { DestinationConnector } from '../connector.ts';
import { FerryError, type ErrorCode } from '../errors.ts';
import { MESSAGE_ID_HEADER, headerProblem, isHeaderName, isHeaderValue, isReservedHeader } from '../wire/headers.ts';
import { deliveryMessageId } from '../wire/ids.ts';
import { circuitBreaker, type CircuitBreaker } from './circuit-breaker.ts';
import type { Delivery, Destination } from './destination.ts';

export interface HttpsDestinationConfig extends DestinationConfig {
  type: 'https';
  url: string;
  token: string | undefined;
  hmac: { keyId: string; secret: string } | undefined;
  /** Absolute paths of PEM files. */
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
  timeoutMs: number;
  headers: Record<string, string>;
  /** URL prefixes a script's ctx.deliver(…, { url }) may use; empty = dynamic URLs refused. */
  allowDynamicUrl: string[];
  circuitBreaker: { failures: number; cooldownMs: number };
}

const defaults = { timeout: '30s', circuitBreaker: { failures: 5, cooldown: '30s' } } as const;

const schema = Type.Object(
  {
    type: Tag('https', 'POST each message to a URL, for example another Ferry engine.'),
    url: Type.String({
      pattern: '^https?://\\S+$',
      patternErrorMessage: 'must be an https:// (or http://) URL',
      title: 'URL',
      description: 'Where each message is POSTed.',
      examples: ['https://central.example.org:8443/in/adt'],
    }),
    token: Type.Optional(
      Type.String({ minLength: 1, title: 'Token', description: 'Sent as `Authorization: Bearer <token>`; use ${ENV_VAR} to keep it out of the file.' }),
    ),
    hmac: Type.Optional(
      Type.Object(
        {
          keyId: Type.String({ minLength: 1, title: 'Key id', description: 'The key id the receiver knows the secret by.' }),
          secret: Type.String({ minLength: 1, title: 'Secret', description: 'The shared HMAC secret; use ${ENV_VAR} to keep it out of the file.' }),
        },
        { additionalProperties: false, title: 'HMAC signing', description: 'Sign each request (for receivers with `auth: hmac`).' },
      ),
    ),
    ca: Type.Optional(Path({ title: 'CA', description: 'CA certificate (PEM) the server must chain to; default: the system CAs. Verification is never turned off.' })),
    cert: Type.Optional(Path({ title: 'Client certificate', description: 'Client certificate (PEM) for receivers that require one.' })),
    key: Type.Optional(Path({ title: 'Client key', description: 'Private key (PEM) of the client certificate.' })),
    timeout: Type.Optional(
      Duration({
        title: 'Timeout',
        description: 'Longest a request may take, connection included; then it counts as a transient failure.',
        default: defaults.timeout,
      }),
    ),
    headers: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        title: 'Headers',
        description: 'Extra request headers, e.g. Content-Type: application/json.',
        examples: [{ 'Content-Type': 'application/hl7-v2' }],
      }),
    ),
    allowDynamicUrl: Type.Optional(
      Type.Array(
        Type.String({ pattern: '^https?://\\S+$', patternErrorMessage: 'must be an https:// (or http://) URL prefix' }),
        {
          minItems: 1,
          title: 'Allowed dynamic URLs',
          description: "URL prefixes a script may send to with ctx.deliver(body, { url }); any other URL errors the message.",
          examples: [['https://api.example.org/']],
        },
      ),
    ),
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          failures: Type.Optional(
            Type.Integer({
              minimum: 1,
              title: 'Failures',
              description: 'Consecutive transient failures that open the breaker.',
              default: defaults.circuitBreaker.failures,
            }),
          ),
          cooldown: Type.Optional(
            Duration({
              title: 'Cool-down',
              description: 'How long an open breaker fails deliveries at once before letting one probe through.',
              default: defaults.circuitBreaker.cooldown,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Circuit breaker',
          description: 'Stops hammering an endpoint that keeps failing.',
          default: defaults.circuitBreaker,
        },
      ),
    ),
  },
  { additionalProperties: false, title: 'HTTPS destination', description: 'POSTs each message to a URL.' },
);

/** How much of a response is kept in the message log. */
const KEPT_RESPONSE_CHARS = 2_000;
/** Response bytes read at most; the rest is not waited for. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Parallel connections per destination: `order: parallel` delivers up to 8 at once. */
const MAX_SOCKETS = 8;

const RETRYABLE_STATUS = new Set([408, 425, 429]);

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export const parseRetryAfter = (value: string | undefined, now = Date.now()): number | undefined => {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP date names its weekday and month; Date.parse alone would take "-3" for a year.
  const date = /[A-Za-z]/.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
};

/** Whether `url` is under one of the prefixes, on a path boundary ("https://a.org" does not admit "https://a.org.evil"). */
export const urlAllowed = (url: URL, prefixes: readonly string[]): boolean =>
  prefixes.some((prefix) => {
    const base = new URL(prefix).href;
    const href = url.href;
    if (!href.startsWith(base)) return false;
    return base.endsWith('/') || href.length === base.length || '/?#'.includes(href[base.length]!);
  });

const defaultContentType = (content: Buffer): string =>
  /^(MSH|FHS|BHS)/.test(content.subarray(0, 3).toString('latin1')) ? 'x-application/hl7-v2+er7' : 'application/octet-stream';

interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

const clip = (text: string): string => (text.length <= KEPT_RESPONSE_CHARS ? text : `${text.slice(0, KEPT_RESPONSE_CHARS)}… (truncated)`);

const readFileOrFail = (file: string | undefined, what: string, destination: string): Buffer | undefined => {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new FerryError('CONFIG_INVALID', `destination ${destination}: cannot read ${what} ${file}: ${(cause as Error).message}`, { cause });
  }
};

const tlsCodes = /CERT|SELF_SIGNED|UNABLE_TO|ALTNAME|ERR_TLS|ERR_SSL|EPROTO/;

export const httpsDestination = (config: HttpsDestinationConfig, deps: { logger: Logger }): Destination => {
  const log = deps.logger.child({ destination: config.name });
  const ca = readFileOrFail(config.ca, 'ca', config.name);
  const cert = readFileOrFail(config.cert, 'cert', config.name);
  const key = readFileOrFail(config.key, 'key', config.name);
  const httpsAgent = new HttpsAgent({ ca, cert, key, checkServerIdentity, keepAlive: true, maxSockets: MAX_SOCKETS });
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  const staticUrl = new URL(config.url);
  // One breaker per origin: a relay sending to many APIs must not stop them all for one dead host.
  const breakers = new Map<string, CircuitBreaker>();
  const breakerFor = (origin: string): CircuitBreaker => {
    let breaker = breakers.get(origin);
    if (!breaker) {
      breaker = circuitBreaker({
        ...config.circuitBreaker,
        onChange: (state, failures) =>
          state === 'open'
            ? log.warn({ code: 'HTTP_CIRCUIT_OPEN', origin, failures, cooldownMs: config.circuitBreaker.cooldownMs }, `circuit breaker open: ${origin} failed ${failures} times in a row`)
            : log.info({ origin }, `circuit breaker closed: ${origin} answers again`),
      });
      breakers.set(origin, breaker);
    }
    return breaker;
  };

  const targetOf = (delivery: Delivery): URL => {
    const dynamic = delivery.meta?.url;
    if (dynamic === undefined) return staticUrl;
    let url: URL;
    try {
      url = new URL(dynamic);
    } catch {
      throw new FerryError('HTTP_URL_NOT_ALLOWED', `the script chose "${dynamic}", which is not a URL`);
    }
    if (!urlAllowed(url, config.allowDynamicUrl)) {
      const allowed = config.allowDynamicUrl.length > 0 ? `allowDynamicUrl is ${config.allowDynamicUrl.join(', ')}` : 'the destination has no allowDynamicUrl';
      throw new FerryError('HTTP_URL_NOT_ALLOWED', `the script chose ${url.href}, which is not allowed (${allowed})`);
    }
    return url;
  };

  const exchange = (url: URL, method: string, headers: Record<string, string>, body: Buffer, signal: AbortSignal | undefined): Promise<Response> =>
    new Promise((resolve, reject) => {
      const secure = url.protocol === 'https:';
      // A skipped delivery's signal ends the request at once (and its socket with it).
      const request = (secure ? httpsRequest : httpRequest)(url, { method, headers, agent: secure ? httpsAgent : httpAgent, ...(signal ? { signal } : {}) });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        request.destroy();
      }, config.timeoutMs);
      const fail = (error: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        if (timedOut) {
          reject(new FerryError('HTTP_TIMEOUT', `${url.origin} did not answer within ${config.timeoutMs} ms`, { details: { url: url.href } }));
          return;
        }
        const code = error.code ?? '';
        const detail = code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
        const what = tlsCodes.test(code) ? `TLS failed (${detail}); check the destination's ca` : detail;
        reject(new FerryError('HTTP_CONNECT_FAILED', `cannot reach ${url.origin}: ${what}`, { cause: error, details: { url: url.href } }));
      };
      request.on('error', fail);
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        response.on('data', (chunk: Buffer) => {
          if (kept >= MAX_RESPONSE_BYTES) return;
          chunks.push(chunk);
          kept += chunk.length;
        });
        response.on('error', fail);
        response.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES).toString('utf8');
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text });
        });
      });
      request.end(body);
    });

  /** Turns a response into the stage content, or throws the failure with its class. */
  const judge = (response: Response, url: URL, delivery: Delivery): string => {
    const { status, text } = response;
    const summary = `HTTP ${status}${text ? ` ${clip(text.trim())}` : ''}`;
    const details = () => ({ url: url.href, status, response: clip(text) });
    const failure = (code: ErrorCode, message: string, retryAfterMs?: number) =>
      new FerryError(code, `${url.origin}${url.pathname} answered ${message}`, { details: details(), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });

    if (status >= 200 && status < 300) {
      if (/^\s*\{/.test(text)) {
        let reply: unknown;
        try {
          reply = JSON.parse(text);
        } catch {
          return summary;
        }
        if ((reply as { Success?: unknown }).Success === false) throw failure('HTTP_NOT_SUCCESS', `${status} with "Success": false: ${clip(text.trim())}`);
      }
      return summary;
    }
    if (RETRYABLE_STATUS.has(status) || status >= 500) {
      const retryAfterMs = parseRetryAfter(Array.isArray(response.headers['retry-after']) ? response.headers['retry-after'][0] : response.headers['retry-after']);
      throw failure('HTTP_RETRYABLE_STATUS', `${status}: ${clip(text.trim())}`, retryAfterMs);
    }
    const error = failure('HTTP_REJECTED', `${status}: ${clip(text.trim())}`);
    log.error(
      { alert: true, code: error.code, id: delivery.id, output: delivery.output, url: url.href, status, response: clip(text) },
      `ALERT: ${url.origin}${url.pathname} refused message ${delivery.id} with ${status}; it will not be retried`,
    );
    throw error;
  };

  return {
    async send(delivery) {
      // Checked when the script ran; again here, where the request is built, for a message log written
      // by an older Ferry that did not check: a script's Host or Transfer-Encoding must never go out.
      for (const [name, value] of Object.entries(delivery.meta?.headers ?? {})) {
        const problem = headerProblem(name, value);
        if (problem !== undefined) throw new FerryError('SCRIPT_BAD_RESULT', `the script's ctx.deliver ${problem}`);
      }
      const url = targetOf(delivery);
      const method = delivery.meta?.method ?? 'POST';
      const headers: Record<string, string> = {
        'Content-Type': defaultContentType(delivery.content),
        ...config.headers,
        ...delivery.meta?.headers,
        'Content-Length': String(delivery.content.length),
        [MESSAGE_ID_HEADER]: deliveryMessageId(delivery),
      };
      if (config.token !== undefined) headers['Authorization'] = `Bearer ${config.token}`;
      if (config.hmac) {
        Object.assign(headers, signRequest({ ...config.hmac, method, path: `${url.pathname}${url.search}`, body: delivery.content }));
      }
      const breaker = breakerFor(url.origin);
      const verdict = breaker.check();
      if (!verdict.ok) {
        throw new FerryError('HTTP_CIRCUIT_OPEN', `${url.origin} failed repeatedly; next try in ${Math.ceil(verdict.retryAfterMs / 1000)} s`, {
          details: { url: url.href },
          retryAfterMs: verdict.retryAfterMs,
        });
      }

      let response: Response;
      try {
        response = await exchange(url, method, headers, delivery.content, delivery.signal);
      } catch (error) {
        breaker.failure();
        throw error;
      }
      try {
        const outcome = judge(response, url, delivery);
        breaker.success();
        return outcome;
      } catch (error) {
        // A 4xx (or "Success": false) came from a live endpoint: only transient statuses count against it.
        if ((error as FerryError).code === 'HTTP_RETRYABLE_STATUS') breaker.failure();
        else breaker.success();
        throw error;
      }
    },

    async close() {
      httpsAgent.destroy();
      httpAgent.destroy();
    },
  };
};

export const httpsDestinationConnector: DestinationConnector<typeof schema, HttpsDestinationConfig> = {
  type: 'https',
  schema,
  follows: ['url', 'method', 'headers'],
  check(raw, { fail, checkFile }) {
    const url = raw['url'];
    if (typeof url === 'string' && !URL.canParse(url)) fail(['url'], `not a valid URL: ${url}`);
    if (typeof url === 'string' && url.startsWith('http://') && raw['token'] !== undefined) {
      fail(['token'], 'a token must not travel over plain http://; use an https:// URL (or hmac)');
    }
    if (raw['token'] !== undefined && raw['hmac'] !== undefined) fail(['hmac'], 'use token or hmac, not both');
    if ((raw['cert'] === undefined) !== (raw['key'] === undefined)) {
      fail([raw['cert'] === undefined ? 'key' : 'cert'], 'a client certificate needs both cert and key');
    }
    for (const key of ['ca', 'cert', 'key']) checkFile(raw[key], [key]);
    for (const [name, value] of Object.entries(entry(raw['headers']))) {
      if (!isHeaderName(name)) fail(['headers', name], `"${name}" is not a valid header name`);
      else if (isReservedHeader(name)) fail(['headers', name], `${name} is set by Ferry and cannot be configured`);
      else if (typeof value === 'string' && !isHeaderValue(value)) fail(['headers', name], 'a header value may hold tab, printable ASCII and Latin-1 characters, no line breaks or other control characters');
    }
  },
  normalize(raw, dir) {
    const breaker = raw.circuitBreaker ?? {};
    return {
      type: 'https',
      url: raw.url,
      token: raw.token,
      hmac: raw.hmac,
      ca: resolveOptional(dir, raw.ca),
      cert: resolveOptional(dir, raw.cert),
      key: resolveOptional(dir, raw.key),
      timeoutMs: durationMs(raw.timeout ?? defaults.timeout),
      headers: raw.headers ?? {},
      allowDynamicUrl: raw.allowDynamicUrl ?? [],
      circuitBreaker: {
        failures: breaker.failures ?? defaults.circuitBreaker.failures,
        cooldownMs: durationMs(breaker.cooldown ?? defaults.circuitBreaker.cooldown),
      },
    };
  },
  create: httpsDestination,
};
