// The HTTPS receiver: one channel's path on the engine HTTPS listener, what the `https` and
// `pusher` sources both are (sources/https.ts, sources/pusher.ts): their shared keys, checks and
// request handling. The request body is the message (any content type), or the `message` field of
// an Iguana-style form post. It answers 200 {"Success": true, "id"} only once intake reports the
// message committed; every refusal gets its status, a JSON reason and a log line.
//
// Checks run cheapest first and before the body is read where they can (TLS, address, declared
// length, bearer token, client certificate), so a refused client uploads nothing: with
// `Expect: 100-continue` the 100 is sent only after them.
import { Type, type TLiteral, type TSchema } from '@sinclair/typebox';
import type Koa from 'koa';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { TokenTable } from '../auth/tokens.ts';
import type { HmacVerifier } from '../auth/hmac.ts';
import { AllowIps, Duration, Size, UrlPath, durationMs, sizeBytes, type Entry } from '../config/units.ts';
import type { Claim, ConfigCheck, ConnectorContext, Source } from '../connector.ts';
import { FerryError, describeError } from '../errors.ts';
import { looksUrlEncoded, parseForm } from '../http/form.ts';
import { peerCertificate, type HttpsHandler, type HttpsMount } from '../http/https-listener.ts';
import { rateLimiter } from '../http/rate-limit.ts';
import { readBody } from '../http/read-body.ts';
import { refuse } from '../http/refuse.ts';
import type { Intake } from '../intake.ts';
import { addressMatcher, parseAddressRule } from '../wire/address-rules.ts';
import { MESSAGE_ID_HEADER } from '../wire/headers.ts';
import { isMessageId } from '../wire/ids.ts';

export type HttpsAuth = 'token' | 'hmac' | 'mtls' | 'none';

/** A receiver's settings: an https source's, and a pusher's (whose auth is token or hmac). */
export interface ReceiverConfig {
  /** URL path on the engine HTTPS listener, e.g. /in/adt. */
  path: string;
  maxBodyBytes: number;
  /** Addresses and CIDR ranges admitted; empty = any. */
  allowIps: string[];
  requireTls: boolean;
  auth: HttpsAuth;
  rateLimit: { requests: number; perMs: number } | undefined;
}

const defaults = { maxBody: '1MB', requireTls: true } as const;

/** The keys of a receiver in channels.yaml, in their order: the source's `type`, then these with its `auth`. */
export const receiverKeys = <T extends TLiteral, A extends TSchema>(type: T, auth: A) => ({
  type,
  path: UrlPath({
    title: 'Path',
    description: 'URL path this channel receives on, unique in this file.',
    examples: ['/in/adt', '/api/lab'],
  }),
  maxBody: Type.Optional(
    Size({
      title: 'Maximum body',
      description: 'Largest request body accepted; a larger one gets 413 while it streams in, and nothing is stored.',
      default: defaults.maxBody,
    }),
  ),
  allowIps: Type.Optional(
    AllowIps({
      title: 'Allowed addresses',
      description: 'Client addresses admitted (IPv4, IPv6, CIDR ranges such as 10.0.0.0/8); others get 403 before the body is read.',
      examples: [['127.0.0.1', '10.20.0.0/16', '::1']],
    }),
  ),
  requireTls: Type.Optional(
    Type.Boolean({
      title: 'Require TLS',
      description: 'Refuse requests that did not arrive over TLS (403). Set false to receive on a plain listener.',
      default: defaults.requireTls,
    }),
  ),
  auth,
  rateLimit: Type.Optional(
    Type.Object(
      {
        requests: Type.Integer({ minimum: 1, title: 'Requests', description: 'Requests allowed per `per`, per token (or client address).' }),
        per: Duration({ title: 'Per', description: 'The window the requests are spread over (a token bucket refilled evenly).' }),
      },
      { additionalProperties: false, title: 'Rate limit', description: 'Requests beyond the limit get 429 with Retry-After.' },
    ),
  ),
});

/** The keys receiverKeys declares, as validated. */
interface RawReceiver {
  path: string;
  maxBody?: number | string;
  allowIps?: string[];
  requireTls?: boolean;
  rateLimit?: { requests: number; per: number | string };
}

export const normalizeReceiver = (raw: RawReceiver): Omit<ReceiverConfig, 'auth'> => ({
  path: raw.path,
  maxBodyBytes: sizeBytes(raw.maxBody ?? defaults.maxBody),
  allowIps: raw.allowIps ?? [],
  requireTls: raw.requireTls ?? defaults.requireTls,
  rateLimit: raw.rateLimit && { requests: raw.rateLimit.requests, perMs: durationMs(raw.rateLimit.per) },
});

/** What must go together with the engine HTTPS listener; `what` names the source: "an https source". */
export const checkReceiver = (raw: Entry, { fail, engine }: ConfigCheck, what: string): void => {
  const listener = engine.https;
  if (!listener) fail([], `${what} needs the engine HTTPS listener: add engine.https: { port, cert, key }`);
  if (listener?.plain && raw['requireTls'] !== false) {
    fail(['requireTls'], 'the HTTPS listener is plain HTTP (engine.https.plain: true); set requireTls: false to receive without TLS');
  }
  if (raw['auth'] === 'mtls' && listener && (listener.plain || listener.clientCert === 'none')) {
    fail(['auth'], 'mtls needs client certificates: set engine.https.clientCert to request or require (with ca)');
  }
  const allowIps = raw['allowIps'];
  if (Array.isArray(allowIps)) {
    allowIps.forEach((rule, j) => {
      const parsed = typeof rule === 'string' ? parseAddressRule(rule) : undefined;
      if (typeof parsed === 'string') fail(['allowIps', j], parsed);
    });
  }
};

/** A receiver's path, which no other channel (nor the WebSocket endpoint) may use. */
export const receiverClaims = (raw: Entry): Claim[] => (typeof raw['path'] === 'string' ? [{ kind: 'https-path', path: raw['path'], at: ['path'] }] : []);

export interface ReceiverDeps {
  channel: string;
  intake: Intake;
  logger: Logger;
  /** For `auth: token` (bearer tokens) and `auth: hmac` (which key may post where). */
  tokens?: Pick<TokenTable, 'verify' | 'authorizeHmacKey'>;
  /** For `auth: hmac`. */
  hmac?: HmacVerifier;
  /** The channel an existing message id belongs to, if any (the message log). */
  channelOf: (id: string) => string | undefined;
  /** What is wrong with a body this path cannot take (answered 400), or undefined to accept it. */
  validate?: (message: Buffer) => string | undefined;
  /** How the message log names this kind of source; default "https". */
  label?: string;
}

export interface Receiver extends Source {
  start(): Promise<void>;
  /** Unmounts (the path answers 503), then waits for requests in flight. Safe to call twice. */
  stop(): Promise<void>;
}

const bearerToken = (header: string | undefined): string | undefined => {
  const match = header === undefined ? null : /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
  return match?.[1];
};

const isJson = (contentType: string | undefined): boolean =>
  contentType !== undefined && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType);

/** The request handler for one channel's path; receiverSource mounts it. */
export const httpsReceiver = (config: ReceiverConfig, deps: ReceiverDeps): HttpsHandler => {
  const { channel, intake, tokens, hmac, channelOf } = deps;
  const log = deps.logger.child({ source: 'https' });
  if ((config.auth === 'token' || config.auth === 'hmac') && !tokens) {
    throw new FerryError('CONFIG_INVALID', `channel ${channel}: auth ${config.auth} needs the token table`);
  }
  if (config.auth === 'hmac' && !hmac) throw new FerryError('CONFIG_INVALID', `channel ${channel}: auth hmac needs an HMAC verifier`);
  const allowed = config.allowIps.length > 0 ? addressMatcher(config.allowIps) : undefined;
  const limiter = config.rateLimit && rateLimiter(config.rateLimit);

  /** The id to take the message in under: the sender's, unless another channel already uses it. */
  const intakeId = (header: string | undefined, client: string): string | undefined => {
    if (header === undefined) return undefined;
    if (!isMessageId(header)) {
      log.warn({ client, header: header.slice(0, 200) }, `ignoring a malformed ${MESSAGE_ID_HEADER}; the message gets a new id`);
      return undefined;
    }
    const owner = channelOf(header);
    // One sender's message posted to two channels here is two messages, not a duplicate.
    return owner === undefined || owner === channel ? header : `${header}-${channel}`;
  };

  return async (ctx: Koa.Context) => {
    const req = ctx.req;
    const client = req.socket.remoteAddress ?? '';
    const no = (code: Parameters<typeof refuse>[2], message: string, options: Parameters<typeof refuse>[4] = {}): void =>
      refuse(ctx, log, code, message, options);

    if (config.requireTls && !(req.socket as Partial<TLSSocket>).encrypted) return no('HTTP_FORBIDDEN', 'this path accepts HTTPS only');
    if (allowed && !allowed(client)) return no('HTTP_FORBIDDEN', `client address ${client} is not allowed on this path`);

    const lengthHeader = req.headers['content-length'];
    if (lengthHeader !== undefined && !/^\d+$/.test(lengthHeader)) return no('HTTP_BAD_REQUEST', 'Content-Length is not a number');
    if (lengthHeader !== undefined && Number(lengthHeader) > config.maxBodyBytes) {
      return no('HTTP_BODY_TOO_LARGE', `the body (${lengthHeader} bytes) exceeds the ${config.maxBodyBytes}-byte limit`);
    }

    // Declared a form; once the body is read, one that cannot be a form is taken as the message itself.
    let isForm = ctx.request.is('application/x-www-form-urlencoded') === 'application/x-www-form-urlencoded';
    const bearer = bearerToken(req.headers.authorization);
    // Who is sending: names the message's source in the log and keys the rate limit.
    let who: string | undefined;

    const checkToken = (token: string): boolean => {
      const verdict = tokens!.verify(token, channel);
      if (verdict.ok) {
        who = `token ${verdict.name}`;
        return true;
      }
      if (verdict.reason === 'forbidden') no('HTTP_FORBIDDEN', `this token may not post to channel ${channel}`);
      else no('HTTP_UNAUTHORIZED', 'unknown or revoked token');
      return false;
    };
    const overLimit = (bodyRead: boolean): boolean => {
      const verdict = limiter?.take(who ?? client);
      if (!verdict || verdict.ok) return false;
      no('HTTP_RATE_LIMITED', `rate limit of ${config.rateLimit!.requests} requests per ${config.rateLimit!.perMs} ms exceeded`, {
        retryAfter: verdict.retryAfterMs / 1000,
        bodyRead,
        level: 'info',
        log: { who },
      });
      return true;
    };

    if (config.auth === 'token') {
      if (bearer !== undefined) {
        if (!checkToken(bearer)) return;
      } else if (!isForm) {
        return no('HTTP_UNAUTHORIZED', 'missing token: send Authorization: Bearer <token>');
      }
    } else if (config.auth === 'mtls') {
      const cert = peerCertificate(ctx);
      if (cert.state === 'none') return no('HTTP_UNAUTHORIZED', 'a client certificate is required on this path');
      if (cert.state === 'untrusted') return no('HTTP_FORBIDDEN', `the client certificate is not trusted: ${cert.reason}`);
      who = `cert ${cert.cn}`;
    }
    const identityKnown = config.auth === 'none' || who !== undefined;
    if (identityKnown && overLimit(false)) return;

    if (req.headers.expect?.toLowerCase() === '100-continue') ctx.res.writeContinue();
    const read = await readBody(req, config.maxBodyBytes);
    switch (read.kind) {
      case 'too-large':
        return no('HTTP_BODY_TOO_LARGE', `the body exceeds the ${config.maxBodyBytes}-byte limit`);
      case 'length-mismatch':
        return no('HTTP_BAD_REQUEST', `the body has ${read.received} bytes, Content-Length said ${read.declared}`);
      case 'aborted':
        log.info({ client, received: read.received }, 'HTTPS client went away before the end of its body');
        return;
    }
    const body = read.body;
    let message = body;

    // `curl -d @message.hl7` declares a form; an Iguana-style form post is one.
    if (isForm && !looksUrlEncoded(body)) isForm = false;
    if (isForm) {
      const fields = parseForm(body);
      if (!fields) return no('HTTP_BAD_REQUEST', 'the form body is malformed (bad %-escape)', { bodyRead: true });
      const field = fields.get('message');
      if (!field) return no('HTTP_BAD_REQUEST', 'the form has no message field', { bodyRead: true });
      message = field;
      if (config.auth === 'token' && who === undefined) {
        const token = fields.get('secret_token');
        if (!token) return no('HTTP_UNAUTHORIZED', 'missing token: send Authorization: Bearer <token> or a secret_token field', { bodyRead: true });
        if (!checkToken(token.toString('utf8'))) return;
      }
    }

    if (config.auth === 'hmac') {
      let verdict;
      try {
        verdict = await hmac!.verify({ method: ctx.method, path: ctx.originalUrl, headers: req.headers, body });
      } catch (error) {
        const code = error instanceof FerryError ? error.code : 'REDIS_UNAVAILABLE';
        return no(code, `cannot check the signature now: ${describeError(error)}`, { retryAfter: 5, bodyRead: true, level: 'error' });
      }
      if (!verdict.ok) return no('HTTP_UNAUTHORIZED', `signature refused: ${verdict.reason}`, { bodyRead: true });
      const grant = tokens!.authorizeHmacKey(verdict.keyId, channel);
      if (!grant.ok && grant.reason === 'forbidden') return no('HTTP_FORBIDDEN', `key ${verdict.keyId} may not post to channel ${channel}`, { bodyRead: true });
      if (!grant.ok) return no('HTTP_UNAUTHORIZED', `unknown key ${verdict.keyId}`, { bodyRead: true });
      who = `key ${verdict.keyId}`;
    }
    if (config.auth === 'token' && who === undefined) {
      return no('HTTP_UNAUTHORIZED', 'missing token: send Authorization: Bearer <token> or a secret_token field', { bodyRead: true });
    }
    if (!identityKnown && overLimit(true)) return;

    if (!isForm && isJson(req.headers['content-type'])) {
      try {
        JSON.parse(message.toString('utf8'));
      } catch (error) {
        return no('HTTP_BAD_REQUEST', `Content-Type is JSON but the body is not: ${(error as Error).message}`, { bodyRead: true });
      }
    }

    const invalid = deps.validate?.(message);
    if (invalid !== undefined) return no('HTTP_BAD_REQUEST', invalid, { bodyRead: true });

    const headerId = req.headers[MESSAGE_ID_HEADER.toLowerCase()];
    const id = intakeId(Array.isArray(headerId) ? headerId[0] : headerId, client);
    const result = await intake.accept(message, { source: `${deps.label ?? 'https'} ${client}${who ? ` ${who}` : ''}`, requireHl7: false, id });
    switch (result.kind) {
      case 'accepted':
        log.debug({ id: result.id, client, who, bytes: message.length, duplicate: result.duplicate }, 'HTTPS message accepted');
        ctx.set(MESSAGE_ID_HEADER, result.id);
        ctx.body = result.duplicate ? { Success: true, id: result.id, duplicate: true } : { Success: true, id: result.id };
        return;
      case 'ignored':
        ctx.body = { Success: true, ignored: 'an HL7 acknowledgement is not processed' };
        return;
      case 'rejected':
        return no('HTTP_BAD_REQUEST', describeError(result.error), { bodyRead: true, log: { id: result.id } });
      case 'failed':
        return no(result.error.code, `the message could not be stored; send it again: ${describeError(result.error)}`, {
          retryAfter: 5,
          bodyRead: true,
          level: 'error',
        });
    }
  };
};

/** Mounts the receiver on the listener while the channel runs. */
export const receiverSource = (config: ReceiverConfig, deps: ReceiverDeps & { mount: HttpsMount }): Receiver => {
  const handler = httpsReceiver(config, deps);
  const inFlight = new Set<Promise<void>>();
  let unmount: (() => void) | undefined;
  return {
    async start() {
      unmount ??= deps.mount.mount(config.path, (ctx) => {
        const work = handler(ctx);
        inFlight.add(work);
        return work.finally(() => inFlight.delete(work));
      });
    },
    async stop() {
      unmount?.();
      unmount = undefined;
      await Promise.allSettled([...inFlight]);
    },
  };
};

/** A receiver for a channel, from the services its connector gets; `what` names the source: "an https source". */
export const createReceiver = (
  config: ReceiverConfig,
  context: ConnectorContext,
  what: string,
  body: Pick<ReceiverDeps, 'validate' | 'label'> = {},
): Receiver => {
  const { channel, intake, logger, https, channelOf } = context;
  if (!https) throw new FerryError('CONFIG_INVALID', `channel ${channel}: ${what} needs engine.https`);
  return receiverSource(config, { channel, intake, logger, mount: https.listener, tokens: https.tokens, hmac: https.hmac, channelOf, ...body });
};
