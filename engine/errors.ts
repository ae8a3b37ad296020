// The one registry of Ferry's stable error codes. Codes are a contract: logs, the admin API and
// users' alerting match on them, so extend this table but never rename or reuse a code.
//
// `permanent` says whether retrying the same work can ever succeed; the retry policy decides by
// this flag alone, never by which connector failed.
//
// `status` is what a code is answered with over HTTP (admin API, HTTPS receiver and pusher,
// WebSocket upgrades), for every code any of them answers with; FerryError carries it, so a throw
// site names only the code. A code without one is not meant to reach an HTTP client: answered 500.

/** The statuses Ferry answers errors with over HTTP. */
export type HttpStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 422 | 429 | 503;

interface ErrorSpec {
  permanent: boolean;
  summary: string;
  status?: HttpStatus;
}

export const errorCodes = {
  // configuration (channels.yaml) and CLI usage
  CONFIG_NOT_FOUND: { permanent: true, summary: 'the config file does not exist' },
  CONFIG_SYNTAX: { permanent: true, summary: 'the config file is not valid YAML' },
  CONFIG_INVALID: { permanent: true, summary: 'the config does not match the schema or is inconsistent' },
  CONFIG_ENV_MISSING: { permanent: true, summary: 'a ${VAR} in the config names an unset environment variable' },
  CLI_USAGE: { permanent: true, summary: 'the command line is wrong' },
  CLI_FILE_UNREADABLE: { permanent: true, summary: 'a file named on the command line does not exist or cannot be read' },

  // embedded / external Redis
  REDIS_NOT_INSTALLED: { permanent: true, summary: 'redis-server is not on PATH' },
  REDIS_START_FAILED: { permanent: false, summary: 'the embedded redis-server did not come up' },
  REDIS_UNAVAILABLE: { permanent: false, summary: 'Redis cannot be reached', status: 503 },
  REDIS_EVICTION_POLICY: { permanent: true, summary: 'an external Redis may evict keys (maxmemory-policy is not noeviction), which would lose queued messages' },

  // MLLP framing and transport
  MLLP_FRAME_TOO_LARGE: { permanent: true, summary: 'an MLLP frame exceeded the configured maximum size' },
  MLLP_BAD_FRAME: { permanent: true, summary: 'bytes outside an MLLP frame or an end block without CR' },
  MLLP_IDLE_TIMEOUT: { permanent: false, summary: 'an MLLP connection was idle past its timeout' },
  MLLP_TOO_MANY_CONNECTIONS: { permanent: false, summary: 'the MLLP listener is at its connection cap, or the sending address at its per-address limit' },
  MLLP_ACK_IGNORED: { permanent: true, summary: 'an MLLP sender sent an ACK as a message: never acknowledged, and it does not keep the connection open' },
  MLLP_ACK_TIMEOUT: { permanent: false, summary: 'no ACK arrived within the timeout' },
  MLLP_CONNECT_FAILED: { permanent: false, summary: 'could not connect to the MLLP peer' },
  MLLP_NAK: { permanent: false, summary: 'the peer answered with a negative acknowledgement' },
  MLLP_CONNECTION_CLOSED: { permanent: false, summary: 'the MLLP connection closed before the reply arrived' },
  MLLP_REJECTED: { permanent: true, summary: 'the MLLP peer rejected the message (AR/CR); retrying it unchanged cannot help' },
  MLLP_ACK_MISMATCH: { permanent: false, summary: 'the ACK names another message (MSA-2 is not the MSH-10 sent); the connection is reset' },

  // HL7 v2 codec
  HL7_NOT_HL7: { permanent: true, summary: 'the message does not start with an MSH segment', status: 422 },
  HL7_BAD_PATH: { permanent: true, summary: 'an HL7 path such as PID-5.1 is malformed' },
  HL7_UNKNOWN_CHARSET: { permanent: true, summary: 'MSH-18 names a character set Ferry cannot decode', status: 422 },
  HL7_ENCODING: { permanent: true, summary: 'the bytes are not valid in the declared character set', status: 422 },
  HL7_NOT_ACK: { permanent: false, summary: 'a response was HL7 but not an acknowledgement (no MSA segment)' },

  // translator scripts and their sandbox
  SCRIPT_NOT_FOUND: { permanent: true, summary: 'a channel names a script file that does not exist' },
  SCRIPT_COMPILE: { permanent: true, summary: 'the script failed to transpile or bundle' },
  SCRIPT_TYPECHECK: { permanent: true, summary: 'the script has type errors (ferry check)' },
  SCRIPT_NO_DEFAULT_EXPORT: { permanent: true, summary: 'the script has no default-exported function' },
  SCRIPT_THREW: { permanent: true, summary: 'the script threw while handling a message' },
  SCRIPT_TIMEOUT: { permanent: true, summary: 'the script ran past its time limit' },
  SCRIPT_MEMORY: { permanent: true, summary: 'the script exceeded its memory limit' },
  SCRIPT_BAD_RESULT: { permanent: true, summary: 'the script returned something that is not an output, or ctx.deliver options Ferry refuses' },
  SCRIPT_TOO_MANY_OUTPUTS: { permanent: true, summary: 'the script made more outputs for one message than scriptLimits.maxOutputs allows; nothing was queued' },
  SANDBOX_FAILED: { permanent: false, summary: 'the sandbox itself failed; the message can be retried' },
  SANDBOX_CRASHED: { permanent: true, summary: 'the sandbox process died each time it translated this message; it is not retried' },

  // message store and queues
  STORE_FAILED: { permanent: false, summary: 'the message log could not be written' },
  MESSAGE_NOT_FOUND: { permanent: true, summary: 'no message with that id', status: 404 },
  COMMIT_FAILED: { permanent: false, summary: 'the message could not be committed durably; it was not acknowledged', status: 503 },
  QUEUE_FULL: { permanent: false, summary: 'the channel holds maxQueued unfinished messages; intake refuses until it drains', status: 503 },
  MESSAGE_DUPLICATE: { permanent: true, summary: 'same sender and MSH-10 as a message received within the dedupe window; acknowledged, not processed again' },

  // destinations
  FILE_WRITE_FAILED: { permanent: false, summary: 'a file destination could not write its file' },
  FILE_NAME_TOO_LONG: { permanent: true, summary: 'a file destination file name is longer than a file system allows (255 bytes), or its path longer than the system allows' },
  FILE_NAME_INVALID: { permanent: true, summary: 'the file system refused a file destination file name as invalid (characters it cannot store)' },
  FILE_EXISTS: { permanent: true, summary: 'a file destination file name is taken: by another file (with onExists: error) or by a folder' },
  FILE_READ_FAILED: { permanent: true, summary: 'a file source could not read a file, or found no HL7 message in it; the file was moved to errorDir' },
  FILE_TOO_LARGE: { permanent: true, summary: 'a file source found a file larger than its maxFileSize; the file was moved to errorDir unread' },
  CHANNEL_NOT_FOUND: { permanent: true, summary: 'no channel has that name (admin API), or a channel destination names an unknown channel', status: 404 },
  DESTINATION_GAVE_UP: { permanent: true, summary: 'a destination exhausted its retry attempts' },
  DESTINATION_SERIALIZE_FAILED: { permanent: true, summary: "a destination's own work on an output failed (too deeply nested or too large to serialize, a character its protocol cannot carry): it would fail the same way on every try" },
  DESTINATION_NOT_FOUND: { permanent: true, summary: 'the channel has no destination with that name', status: 404 },
  DELIVERY_SKIPPED: { permanent: true, summary: 'an operator skipped a delivery that was being retried (admin API); the message can be resent' },
  DELIVERY_NOT_IN_PROGRESS: { permanent: true, summary: 'a skip named a delivery that is not being tried now (already sent or failed, not started yet, or its channel is stopped)', status: 409 },
  WS_BAD_EVENT: { permanent: true, summary: 'a websocket destination output has no topic or is a malformed push envelope' },
  WS_CONNECTION_GONE: { permanent: true, summary: 'a script addressed a WebSocket connection id that is not open (ids are never reused)' },

  // HTTPS receiver (what a refused request is logged as) and sender
  HTTP_UNAUTHORIZED: { permanent: true, summary: 'a request to an HTTPS source or WebSocket endpoint had no valid credentials', status: 401 },
  HTTP_FORBIDDEN: { permanent: true, summary: 'a request to an HTTPS source or WebSocket endpoint was not allowed: token, address, TLS or certificate', status: 403 },
  HTTP_BODY_TOO_LARGE: { permanent: true, summary: 'a request body exceeded the source maxBody', status: 413 },
  HTTP_RATE_LIMITED: { permanent: false, summary: 'a client sent more requests than the source rateLimit allows, or a WebSocket endpoint holds maxConnections', status: 429 },
  HTTP_BAD_REQUEST: { permanent: true, summary: 'a request to an HTTPS source was malformed, or a WebSocket upgrade asked for a path nothing serves', status: 400 },
  HTTP_CHANNEL_STOPPED: { permanent: false, summary: 'the channel behind an HTTPS path is stopped', status: 503 },
  HTTP_CONNECT_FAILED: { permanent: false, summary: 'an HTTPS destination could not be reached (connection, DNS or TLS)' },
  HTTP_TIMEOUT: { permanent: false, summary: 'an HTTPS destination did not answer within its timeout' },
  HTTP_RETRYABLE_STATUS: { permanent: false, summary: 'an HTTPS destination answered 408, 425, 429 or 5xx' },
  HTTP_REJECTED: { permanent: true, summary: 'an HTTPS destination refused the message with a 4xx; retrying cannot help' },
  HTTP_NOT_SUCCESS: { permanent: false, summary: 'an HTTPS destination answered 2xx with {"Success": false}' },
  HTTP_CIRCUIT_OPEN: { permanent: false, summary: 'an HTTPS destination failed repeatedly; deliveries wait for its cool-down' },
  HTTP_URL_NOT_ALLOWED: { permanent: true, summary: 'a script chose a URL outside the destination allowDynamicUrl prefixes' },

  // PostgreSQL destination
  POSTGRES_UNAVAILABLE: { permanent: false, summary: 'PostgreSQL could not be reached, lost the connection, timed out or refused for a passing reason (shutdown, resources, serialization failure, deadlock)' },
  POSTGRES_REJECTED: { permanent: true, summary: 'PostgreSQL refused the statement: constraint violation, bad SQL, unknown table or column, or bad data' },
  POSTGRES_BAD_OUTPUT: { permanent: true, summary: 'the output is not a JSON object (or array of objects) or lacks a parameter the SQL names' },

  // admin API
  API_BAD_REQUEST: { permanent: true, summary: 'an admin API request has a bad parameter', status: 400 },
  API_NOT_FOUND: { permanent: true, summary: 'no admin API endpoint has that path', status: 404 },
  API_METHOD_NOT_ALLOWED: { permanent: true, summary: 'the admin API endpoint does not take that HTTP method (the answer lists those it takes in Allow)', status: 405 },
  AUTH_REQUIRED: { permanent: true, summary: 'the admin API call needs a login session or an API token', status: 401 },
  AUTH_FAILED: { permanent: true, summary: 'wrong user name or password, or an unknown API token', status: 401 },
  AUTH_RATE_LIMITED: { permanent: false, summary: 'too many failed logins from this address or for this user; retry later', status: 429 },
  AUTH_LOGIN_BUSY: { permanent: false, summary: 'another login from this address or for this user is being checked; retry in a second', status: 429 },
  AUTH_CSRF: { permanent: true, summary: 'a state-changing call lacks the session CSRF token or comes from another site', status: 403 },
  AUTH_FORBIDDEN: { permanent: true, summary: "the user's role does not allow this call", status: 403 },
  ADMIN_NOT_LOOPBACK: { permanent: true, summary: 'no users are configured, so the admin API may listen on loopback only' },
  USERS_INVALID: { permanent: true, summary: 'the users file cannot be read or is malformed' },
  USER_NOT_FOUND: { permanent: true, summary: 'no user with that name in the users file' },
  USER_EXISTS: { permanent: true, summary: 'a user with that name already exists' },

  // auth material: token table (tokens.yaml), certificates
  TOKEN_FILE_INVALID: { permanent: true, summary: 'the tokens file is not valid YAML or does not match its format' },
  TOKEN_EXISTS: { permanent: true, summary: 'a token or HMAC key with that name already exists' },
  TOKEN_NOT_FOUND: { permanent: true, summary: 'no token or HMAC key with that name' },
  CERT_EXISTS: { permanent: true, summary: 'certificate files already exist (pass --force to replace them)' },
  CERT_CA_MISSING: { permanent: true, summary: 'the CA key or certificate is missing (run ferry certs init)' },
  CERT_UNREADABLE: { permanent: true, summary: 'an existing certificate cannot be parsed' },

  // engine lifecycle
  ENGINE_SHUTTING_DOWN: { permanent: false, summary: 'the engine is stopping and takes no new work', status: 503 },
  PORT_IN_USE: { permanent: true, summary: 'a listener could not bind its port' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCodes;

/** The status `code` is answered with over HTTP; undefined for a code no HTTP path answers with. */
export const httpStatusOf = (code: ErrorCode): HttpStatus | undefined => (errorCodes[code] as ErrorSpec).status;

export interface FerryErrorOptions {
  cause?: unknown;
  /** Overrides the code's default class, e.g. an HTTP 4xx that is permanent for one connector. */
  permanent?: boolean;
  /** Overrides the code's HTTP status, where one answer genuinely differs (say why where it is used). */
  status?: HttpStatus;
  /** Structured facts for logs and the admin API (file, line, path, …). */
  details?: Record<string, unknown>;
  /** When the far end said to come back (Retry-After, an open circuit breaker): no retry sooner. */
  retryAfterMs?: number;
}

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly permanent: boolean;
  /** What an HTTP answer to this error says: the code's status in the registry, unless overridden. */
  readonly status: HttpStatus | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.permanent = options.permanent ?? errorCodes[code].permanent;
    this.status = options.status ?? httpStatusOf(code);
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }
}

export const isFerryError = (error: unknown): error is FerryError => error instanceof FerryError;

/** Whether retrying could help: FerryErrors say so themselves; unknown errors are assumed transient. */
export const isPermanent = (error: unknown): boolean => isFerryError(error) && error.permanent;

/** One line for logs and the message log: `CODE: message` (the code only when there is one). */
export const describeError = (error: unknown): string => {
  if (isFerryError(error)) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return errorText(error);
  return String(error);
};

/**
 * An error's message; for an OpenSSL error, its reason ("TLS: peer did not return a certificate")
 * instead of the library's one-line dump of addresses and source file names.
 */
export const errorText = (error: Error): string => {
  const { reason, library } = error as Error & { reason?: unknown; library?: unknown };
  return typeof reason === 'string' && reason !== '' && typeof library === 'string' ? `TLS: ${reason}` : error.message;
};
