import test from 'ava';
import { FerryError, errorCodes, httpStatusOf, type ErrorCode, type HttpStatus } from '../engine/errors.ts';

// The error registry is a contract: each code's class, and the status it is answered with over
// HTTP. The statuses below are what the HTTP paths answer (test/http, test/https and
// test/websocket pin them path by path); here they are pinned per code, in both directions, so a
// code an HTTP path starts answering with cannot be left without a status (it would answer 500).

/** Every code any HTTP path answers with, and where. */
const answeredOverHttp: Record<string, [HttpStatus, string]> = {
  // admin API (engine/http/admin.ts, auth.ts, read-json.ts)
  API_BAD_REQUEST: [400, 'a bad parameter or body'],
  API_NOT_FOUND: [404, 'an unknown /api path'],
  API_METHOD_NOT_ALLOWED: [405, 'another method on an endpoint'],
  AUTH_REQUIRED: [401, 'no session or token'],
  AUTH_FAILED: [401, 'a wrong password or an unknown token'],
  AUTH_CSRF: [403, 'no CSRF token, or another site'],
  AUTH_FORBIDDEN: [403, 'a role too low, or open mode asked by another host name'],
  AUTH_RATE_LIMITED: [429, 'too many failed logins'],
  AUTH_LOGIN_BUSY: [429, 'a login already being checked'],
  CHANNEL_NOT_FOUND: [404, 'an unknown channel name'],
  MESSAGE_NOT_FOUND: [404, 'an unknown message id'],
  DESTINATION_NOT_FOUND: [404, 'a skip naming an unknown destination'],
  DELIVERY_NOT_IN_PROGRESS: [409, 'a skip of a delivery not being tried'],
  // a resend the channel refuses (intake "rejected")
  HL7_NOT_HL7: [422, 'a resend of content that is not HL7 on an HL7 channel'],
  HL7_ENCODING: [422, 'a resend of bytes invalid in their character set'],
  HL7_UNKNOWN_CHARSET: [422, 'a resend naming a character set Ferry cannot decode'],
  // a message that cannot be committed now (intake "failed"): admin resend and the HTTPS receiver
  COMMIT_FAILED: [503, 'the message log or Redis failed'],
  QUEUE_FULL: [503, 'the channel is at maxQueued'],
  // HTTPS receiver and pusher (engine/sources/https.ts, http/https-listener.ts)
  HTTP_BAD_REQUEST: [400, 'a malformed request'],
  HTTP_UNAUTHORIZED: [401, 'no valid credentials'],
  HTTP_FORBIDDEN: [403, 'a token, key, address, TLS or certificate not allowed'],
  HTTP_BODY_TOO_LARGE: [413, 'a body over maxBody'],
  HTTP_RATE_LIMITED: [429, 'over rateLimit'],
  HTTP_CHANNEL_STOPPED: [503, 'the channel on the path is stopped'],
  REDIS_UNAVAILABLE: [503, "an HMAC signature's nonce cannot be checked"],
  // WebSocket upgrades (engine/push/websocket-endpoint.ts)
  ENGINE_SHUTTING_DOWN: [503, 'an upgrade while the engine stops'],
};

test('every code an HTTP path answers with has its status in the registry, and no other code has one', (t) => {
  const withStatus = Object.fromEntries(
    (Object.keys(errorCodes) as ErrorCode[]).flatMap((code) => {
      const status = httpStatusOf(code);
      return status === undefined ? [] : [[code, status]];
    }),
  );
  t.deepEqual(withStatus, Object.fromEntries(Object.entries(answeredOverHttp).map(([code, [status]]) => [code, status])));
});

test('a FerryError carries its code\'s status; an override wins; a code no HTTP path answers has none', (t) => {
  t.is(new FerryError('MESSAGE_NOT_FOUND', 'no message x').status, 404);
  t.is(new FerryError('AUTH_RATE_LIMITED', 'wait', { details: { retryAfter: 3 } }).status, 429);
  t.is(new FerryError('API_BAD_REQUEST', 'an ACK', { status: 422 }).status, 422);
  t.is(new FerryError('PORT_IN_USE', 'taken').status, undefined);
  t.is(new FerryError('SCRIPT_THREW', 'boom').status, undefined);
  // The status is about HTTP; whether a retry can help stays the code's class.
  t.false(new FerryError('QUEUE_FULL', 'full').permanent);
  t.true(new FerryError('HL7_NOT_HL7', 'no').permanent);
});

test('every code has a summary, and its class is a boolean', (t) => {
  for (const [code, spec] of Object.entries(errorCodes)) {
    t.regex(code, /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/);
    t.true(spec.summary.length > 10, code);
    t.is(typeof spec.permanent, 'boolean', code);
  }
});
