// The shape of channels.yaml as the user writes it (before defaults, path resolution and unit
// parsing). One schema serves two readers: config.ts validates with it, and
// engine/channels.schema.json is generated from it for editors (yaml-language-server), so every key
// carries a title, a description and its default. `errorMessage` / `patternErrorMessage` are the
// VS Code JSON-schema extensions for custom messages; config.ts uses them for its own messages too.

import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** Default values in YAML terms; the schema advertises them and config.ts applies them. */
export const configDefaults = {
  engine: {
    redis: 'embedded',
    data: './data',
    admin: { host: '127.0.0.1', port: 8470 },
    retention: '30d',
    logLevel: 'info',
    shutdownTimeout: '10s',
    commitTimeout: '5s',
    users: './users.yaml',
    tokens: './tokens.yaml',
  },
  channel: { scriptLimits: { memory: '64MB', timeout: '1s', maxOutputs: 1000 }, concurrency: 1, maxQueued: 100_000 },
  mllp: { host: '127.0.0.1', maxFrameSize: '1MB', idleTimeout: '5m', maxConnections: 100, maxConnectionsPerAddress: 10, clientCert: 'none' },
  destination: {
    order: 'fifo',
    retry: { attempts: 5, backoff: 'exponential', delay: '1s', maxDelay: '5m' },
  },
  file: { filename: '{id}', onExists: 'suffix' },
  fileSource: { pattern: '*.hl7', pollInterval: '1s', after: 'move', encoding: 'auto', maxFileSize: '64MB' },
  mllpDestination: { ackTimeout: '30s' },
  https: { host: '127.0.0.1', clientCert: 'none', plain: false },
  httpsSource: { maxBody: '1MB', requireTls: true },
  httpsDestination: { timeout: '30s', circuitBreaker: { failures: 5, cooldown: '30s' } },
  websocket: { path: '/ws', replay: { size: 1000, ttl: '5m', maxBytes: '64MB' }, sendBuffer: '1MB', maxConnections: 1000 },
  postgres: { pool: { max: 5 }, timeout: '30s' },
} as const;

/** A smaller isolate cannot even hold the HL7 helpers plus one large message. */
export const minScriptMemoryBytes = 8 * 1024 ** 2;

/**
 * The outputs of one message are committed to the message log in one transaction (~10 µs per output
 * and destination), which holds the engine's event loop, every channel's ACKs included: 10,000
 * outputs to two destinations take ~0.1 s.
 */
export const maxScriptOutputs = 10_000;

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** Tokens a file destination's `filename` may use; each is replaced per message. */
export const filenameTokens = ['id', 'channel', 'destination', 'index', 'controlId', 'date', 'time'] as const;

const durationUnits = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const sizeUnits = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 } as const;

const unitPattern = (units: object): RegExp => new RegExp(`^(\\d+)(${Object.keys(units).join('|')})$`);
const durationPattern = unitPattern(durationUnits);
const sizePattern = unitPattern(sizeUnits);

const scaled = (value: number | string, pattern: RegExp, units: Record<string, number>): number => {
  if (typeof value === 'number') return value;
  const match = pattern.exec(value);
  if (!match) throw new TypeError(`not a valid value: ${value}`);
  return Number(match[1]) * units[match[2]!]!;
};

/** `500` / `'500ms'` / `'30s'` / `'5m'` / `'2h'` / `'30d'` → milliseconds. Input must match the schema. */
export const durationMs = (value: number | string): number => scaled(value, durationPattern, durationUnits);

/** `1048576` / `'512KB'` / `'1MB'` / `'1GB'` (powers of 1024) → bytes. Input must match the schema. */
export const sizeBytes = (value: number | string): number => scaled(value, sizePattern, sizeUnits);

/** Whether a value is a duration the schema accepts (for checks that run before the schema passed). */
export const isDuration = (value: unknown): value is number | string =>
  (typeof value === 'number' && Number.isInteger(value) && value >= 0) ||
  (typeof value === 'string' && durationPattern.test(value));

/** Whether a string is a size the schema accepts (for checks that run before the schema passed). */
export const isSize = (value: unknown): value is number | string =>
  (typeof value === 'number' && Number.isInteger(value) && value >= 0) ||
  (typeof value === 'string' && sizePattern.test(value));

interface Doc {
  title: string;
  description: string;
  default?: unknown;
}

const Duration = (doc: Doc) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: durationPattern.source })], {
    ...doc,
    errorMessage: 'must be a duration: milliseconds, or a number with ms, s, m, h or d (500ms, 30s, 5m, 2h, 30d)',
    examples: ['500ms', '30s', '5m', '2h', '30d'],
  });

const Size = (doc: Doc) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: sizePattern.source })], {
    ...doc,
    errorMessage: 'must be a size: bytes, or a number with B, KB, MB or GB (512KB, 1MB, 64MB)',
    examples: ['512KB', '1MB', '64MB', '1GB'],
  });

// Plain `enum` rather than a union of literals: one error ("must be one of …") instead of one per literal.
const StringEnum = <const T extends readonly string[]>(values: T, doc: Doc) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...doc });

// ajv's discriminator keyword validates only the branch named by `type`, so a mistake inside a
// file destination is not reported as "does not match channel destination" as well.
const Discriminated = <T extends TSchema[]>(branches: [...T], doc: Doc) =>
  Type.Unsafe<Static<T[number]>>({
    type: 'object',
    oneOf: branches,
    discriminator: { propertyName: 'type' },
    ...doc,
  });

const namePattern = '^[a-z0-9][a-z0-9_-]{0,62}$';
const nameRule = 'must be 1 to 63 characters of a-z, 0-9, "-" and "_", starting with a letter or digit';

const Name = (doc: Doc) => Type.String({ pattern: namePattern, patternErrorMessage: nameRule, ...doc });

const Path = (doc: Doc) => Type.String({ minLength: 1, ...doc });

const Host = (doc: Doc) => Type.String({ minLength: 1, ...doc });

const Port = (doc: Doc) => Type.Integer({ minimum: 0, maximum: 65535, ...doc });

const Tag = <T extends string>(value: T, description: string) =>
  Type.Literal(value, { title: 'Type', description });

// The engine's one HTTPS listener; https sources mount their paths on it.
const httpsListenerSchema = Type.Object(
  {
    host: Type.Optional(
      Host({
        title: 'Host',
        description: 'Address the HTTPS listener binds; 0.0.0.0 accepts connections on every interface.',
        default: configDefaults.https.host,
      }),
    ),
    port: Port({ title: 'Port', description: 'TCP port of the HTTPS listener; 0 picks a free port.' }),
    cert: Type.Optional(Path({ title: 'Certificate', description: 'Server certificate (PEM), relative to this file; `ferry certs init` makes one.' })),
    key: Type.Optional(Path({ title: 'Key', description: 'Private key of the server certificate (PEM), relative to this file.' })),
    ca: Type.Optional(
      Path({ title: 'Client CA', description: 'CA certificate (PEM) that client certificates must chain to; needed for clientCert and mtls auth.' }),
    ),
    clientCert: Type.Optional(
      StringEnum(['none', 'request', 'require'], {
        title: 'Client certificates',
        description:
          'none: do not ask; request: ask, and let sources with `auth: mtls` use it; require: refuse every client without a certificate signed by `ca` (401/403).',
        default: configDefaults.https.clientCert,
      }),
    ),
    plain: Type.Optional(
      Type.Boolean({
        title: 'Plain HTTP',
        description: 'Serve plain HTTP without TLS (then cert and key are not needed). Only for a TLS-terminating proxy in front, or tests.',
        default: configDefaults.https.plain,
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'HTTPS listener',
    description: 'The engine listener that channels with `source: { type: https }` receive on.',
  },
);

const urlPathPattern = '^/[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*$';
const urlPathRule = 'must be a URL path such as /in/adt: "/" then segments of A-Z, a-z, 0-9, ".", "_", "~", "-"';

// WebSocket push: an endpoint on the HTTPS listener; websocket destinations publish to its topics.
const websocketSchema = Type.Object(
  {
    path: Type.Optional(
      Type.String({
        pattern: urlPathPattern,
        patternErrorMessage: urlPathRule,
        title: 'Path',
        description: 'URL path of the WebSocket endpoint on the HTTPS listener (wss://host:port/ws).',
        default: configDefaults.websocket.path,
      }),
    ),
    replay: Type.Optional(
      Type.Object(
        {
          size: Type.Optional(
            Type.Integer({
              minimum: 0,
              title: 'Size',
              description: 'Events kept per topic for subscribers that reconnect with lastEventId; 0 = live only.',
              default: configDefaults.websocket.replay.size,
            }),
          ),
          ttl: Type.Optional(
            Duration({
              title: 'TTL',
              description: 'How long an event stays replayable.',
              default: configDefaults.websocket.replay.ttl,
            }),
          ),
          maxBytes: Type.Optional(
            Size({
              title: 'Maximum bytes',
              description: 'Memory for the replay buffers of all topics together; past it the oldest events go first.',
              default: configDefaults.websocket.replay.maxBytes,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Replay buffer',
          description: 'What a subscriber that was offline can still get: a reconnect with lastEventId replays what is buffered and says when some was dropped.',
          default: configDefaults.websocket.replay,
        },
      ),
    ),
    sendBuffer: Type.Optional(
      Size({
        title: 'Send buffer',
        description: 'Unsent data allowed per connection; a subscriber that falls further behind is disconnected (close code 4429) rather than buffered for.',
        default: configDefaults.websocket.sendBuffer,
      }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum connections',
        description: 'Simultaneous WebSocket connections; more are refused with 503.',
        default: configDefaults.websocket.maxConnections,
      }),
    ),
    allowIps: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        title: 'Allowed addresses',
        description: 'Client addresses admitted (IPv4, IPv6, CIDR ranges); others get 403 before the upgrade.',
        examples: [['127.0.0.1', '10.20.0.0/16']],
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'WebSocket push',
    description: 'A WebSocket endpoint on the HTTPS listener where clients authenticate with a token from the tokens file and subscribe to topics.',
  },
);

const engineSchema = Type.Object(
  {
    redis: Type.Optional(
      Type.Union(
        [
          Type.Literal('embedded', { description: 'Start a private redis-server with AOF under the data folder.' }),
          Type.String({ pattern: '^rediss?://\\S+$', description: 'An external Redis (rediss:// for TLS).' }),
        ],
        {
          title: 'Redis',
          description:
            'Where the queues live: "embedded" starts a private redis-server (with AOF) in the data folder; a redis:// or rediss:// URL uses an external Redis.',
          default: configDefaults.engine.redis,
          errorMessage: 'must be "embedded" or a redis:// or rediss:// URL',
          examples: ['embedded', 'redis://127.0.0.1:6379', 'rediss://user:password@redis.example.org:6380/0'],
        },
      ),
    ),
    data: Type.Optional(
      Path({
        title: 'Data folder',
        description: 'Folder for the message log and the embedded Redis files; relative to this file.',
        default: configDefaults.engine.data,
      }),
    ),
    admin: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(
            Host({
              title: 'Admin host',
              description: 'Address the admin API and web UI listen on; 0.0.0.0 exposes them on every interface.',
              default: configDefaults.engine.admin.host,
            }),
          ),
          port: Type.Optional(
            Port({
              title: 'Admin port',
              description: 'TCP port of the admin API and web UI; 0 picks a free port.',
              default: configDefaults.engine.admin.port,
            }),
          ),
          cert: Type.Optional(
            Path({ title: 'Certificate', description: 'Serve the admin API and web UI over HTTPS with this certificate (PEM), relative to this file; needs key.' }),
          ),
          key: Type.Optional(Path({ title: 'Key', description: 'Private key of the admin certificate (PEM), relative to this file.' })),
        },
        {
          additionalProperties: false,
          title: 'Admin API',
          description: 'The admin API and web UI listener.',
          default: configDefaults.engine.admin,
        },
      ),
    ),
    retention: Type.Optional(
      Duration({
        title: 'Retention',
        description: 'How long the message log keeps messages and their content.',
        default: configDefaults.engine.retention,
      }),
    ),
    logLevel: Type.Optional(
      StringEnum(logLevels, {
        title: 'Log level',
        description: 'Least severe level the engine logs.',
        default: configDefaults.engine.logLevel,
      }),
    ),
    shutdownTimeout: Type.Optional(
      Duration({
        title: 'Shutdown timeout',
        description: 'How long a stop waits for in-flight messages before closing anyway.',
        default: configDefaults.engine.shutdownTimeout,
      }),
    ),
    commitTimeout: Type.Optional(
      Duration({
        title: 'Commit timeout',
        description:
          'How long intake waits for Redis to queue a message before answering AE (MLLP) or 503 (HTTPS) instead of holding the sender; the sender keeps the message and resends.',
        default: configDefaults.engine.commitTimeout,
      }),
    ),
    https: Type.Optional(httpsListenerSchema),
    websocket: Type.Optional(websocketSchema),
    users: Type.Optional(
      Path({
        title: 'Users file',
        description:
          'Admin users, roles, password hashes and API token hashes, written by `ferry user`; relative to this file. Keep it out of git. With no users, the admin API listens on loopback only and needs no login.',
        default: configDefaults.engine.users,
      }),
    ),
    tokens: Type.Optional(
      Path({
        title: 'Tokens file',
        description:
          'Bearer tokens (as SHA-256 hashes) and HMAC keys that https sources with auth: token or hmac accept, written by `ferry token`; relative to this file. Keep it out of git. Running engines reload it on every change.',
        default: configDefaults.engine.tokens,
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'Engine',
    description: 'Engine-wide settings; every key is optional.',
  },
);

const mllpSourceSchema = Type.Object(
  {
    type: Tag('mllp', 'Listen for HL7 v2 over MLLP (TCP) and acknowledge each message once it is stored.'),
    host: Type.Optional(
      Host({
        title: 'Host',
        description: 'Address to listen on; 0.0.0.0 accepts connections on every interface.',
        default: configDefaults.mllp.host,
      }),
    ),
    port: Port({ title: 'Port', description: 'TCP port to listen on; 0 picks a free port.' }),
    maxFrameSize: Type.Optional(
      Size({
        title: 'Maximum frame size',
        description: 'Largest message accepted; a larger frame is refused and the connection closed.',
        default: configDefaults.mllp.maxFrameSize,
      }),
    ),
    idleTimeout: Type.Optional(
      Duration({
        title: 'Idle timeout',
        description:
          'A connection that completes no message for this long is closed; a sender trickling a frame byte by byte counts as idle.',
        default: configDefaults.mllp.idleTimeout,
      }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum connections',
        description: 'Simultaneous client connections; more are refused.',
        default: configDefaults.mllp.maxConnections,
      }),
    ),
    maxConnectionsPerAddress: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum connections per address',
        description:
          'Simultaneous connections from one IP address; more from it are refused, so one client cannot take every connection of the listener. Set it to maxConnections to turn it off.',
        default: configDefaults.mllp.maxConnectionsPerAddress,
      }),
    ),
    tls: Type.Optional(
      Type.Object(
        {
          cert: Path({ title: 'Certificate', description: 'Server certificate (PEM), relative to this file; `ferry certs init` makes one.' }),
          key: Path({ title: 'Key', description: 'Private key of the server certificate (PEM), relative to this file.' }),
          ca: Type.Optional(Path({ title: 'Client CA', description: 'CA certificate (PEM) that client certificates must chain to; needed for clientCert: require.' })),
          clientCert: Type.Optional(
            StringEnum(['none', 'require'], {
              title: 'Client certificates',
              description: 'none: do not ask; require: refuse, during the TLS handshake, every sender without a certificate signed by `ca`.',
              default: configDefaults.mllp.clientCert,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'TLS',
          description: 'MLLP over TLS: senders connect with TLS 1.2 or later. Changed certificate files are loaded without a restart.',
        },
      ),
    ),
  },
  { additionalProperties: false, title: 'MLLP source', description: 'An MLLP (HL7 v2 over TCP) listener.' },
);

const channelSourceSchema = Type.Object(
  { type: Tag('channel', 'Receive messages handed off by other channels (their `type: channel` destinations).') },
  { additionalProperties: false, title: 'Channel source', description: 'Fed by other channels.' },
);

const httpsSourceSchema = Type.Object(
  {
    type: Tag('https', 'Receive messages as HTTP POSTs on a path of the engine HTTPS listener; answer 200 once stored.'),
    path: Type.String({
      pattern: '^/[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*$',
      patternErrorMessage: 'must be a URL path such as /in/adt: "/" then segments of A-Z, a-z, 0-9, ".", "_", "~", "-"',
      title: 'Path',
      description: 'URL path this channel receives on, unique in this file.',
      examples: ['/in/adt', '/api/lab'],
    }),
    maxBody: Type.Optional(
      Size({
        title: 'Maximum body',
        description: 'Largest request body accepted; a larger one gets 413 while it streams in, and nothing is stored.',
        default: configDefaults.httpsSource.maxBody,
      }),
    ),
    allowIps: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        title: 'Allowed addresses',
        description: 'Client addresses admitted (IPv4, IPv6, CIDR ranges such as 10.0.0.0/8); others get 403 before the body is read.',
        examples: [['127.0.0.1', '10.20.0.0/16', '::1']],
      }),
    ),
    requireTls: Type.Optional(
      Type.Boolean({
        title: 'Require TLS',
        description: 'Refuse requests that did not arrive over TLS (403). Set false to receive on a plain listener.',
        default: configDefaults.httpsSource.requireTls,
      }),
    ),
    auth: StringEnum(['token', 'hmac', 'mtls', 'none'], {
      title: 'Authentication',
      description:
        'token: `Authorization: Bearer <token>` (or a secret_token form field) from the tokens file; hmac: signed requests; mtls: a client certificate signed by the listener CA; none: anyone who reaches the path (must be explicit).',
    }),
    rateLimit: Type.Optional(
      Type.Object(
        {
          requests: Type.Integer({ minimum: 1, title: 'Requests', description: 'Requests allowed per `per`, per token (or client address).' }),
          per: Duration({ title: 'Per', description: 'The window the requests are spread over (a token bucket refilled evenly).' }),
        },
        { additionalProperties: false, title: 'Rate limit', description: 'Requests beyond the limit get 429 with Retry-After.' },
      ),
    ),
  },
  { additionalProperties: false, title: 'HTTPS source', description: 'Messages POSTed to a path of the engine HTTPS listener.' },
);

// An https source whose body must be a Crossbar-style push: the same path, limits and auth keys.
const pusherSourceSchema = Type.Object(
  {
    ...httpsSourceSchema.properties,
    type: Tag('pusher', 'Receive Crossbar-style pushes {"topic", "args", "kwargs"} as HTTP POSTs on a path of the engine HTTPS listener; a malformed one gets 400.'),
    auth: StringEnum(['token', 'hmac'], {
      title: 'Authentication',
      description: 'token: `Authorization: Bearer <token>` from the tokens file; hmac: signed requests (X-Ferry-Signature).',
    }),
  },
  { additionalProperties: false, title: 'HTTP pusher source', description: 'Push events POSTed as JSON, for websocket destinations to publish.' },
);

const fileSourceSchema = Type.Object(
  {
    type: Tag('file', 'Read HL7 files dropped in a folder; batch files and files of several messages are split into messages.'),
    dir: Path({ title: 'Folder', description: 'Folder watched for files (not its subfolders); relative to this file. Created if missing.' }),
    pattern: Type.Optional(
      Type.String({
        pattern: '^[^/\\\\]+$',
        patternErrorMessage: 'must be a file-name glob such as *.hl7 (no "/" or "\\")',
        title: 'Pattern',
        description:
          'Glob on the file name: * any characters, ? one, [abc] one of, {hl7,txt} alternatives. Names starting with "." or ending .tmp or .part never match: write under such a name, then rename.',
        default: configDefaults.fileSource.pattern,
        examples: ['*.hl7', 'ADT_*.{hl7,txt}'],
      }),
    ),
    pollInterval: Type.Optional(
      Duration({
        title: 'Poll interval',
        description: 'How often the folder is listed. A file is read once its size and modification time are the same in two listings in a row.',
        default: configDefaults.fileSource.pollInterval,
      }),
    ),
    after: Type.Optional(
      StringEnum(['move', 'delete'], {
        title: 'After reading',
        description: 'What happens to a file once every message in it is committed: moved to processedDir, or deleted.',
        default: configDefaults.fileSource.after,
      }),
    ),
    processedDir: Type.Optional(
      Path({
        title: 'Processed folder',
        description: 'Where read files are moved (after: move); default <dir>/processed. A name already there gets -1, -2, … before its extension.',
      }),
    ),
    errorDir: Type.Optional(
      Path({
        title: 'Error folder',
        description: 'Where files that cannot be read or hold no HL7 message are moved, each with a <name>.error.txt saying why; default <dir>/error.',
      }),
    ),
    encoding: Type.Optional(
      Type.String({
        minLength: 1,
        title: 'Encoding',
        description:
          'auto: each message by its MSH-18, as over MLLP (UTF-8 or 8859/1 when empty). Or an MSH-18 character set name (UNICODE UTF-8, 8859/1, …) that the files are in, whatever MSH-18 says.',
        default: configDefaults.fileSource.encoding,
        examples: ['auto', 'UNICODE UTF-8', '8859/1'],
      }),
    ),
    maxFileSize: Type.Optional(
      Size({
        title: 'Maximum file size',
        description: 'Largest file read (a file is read whole to split it); a larger one is moved to errorDir with FILE_TOO_LARGE as its reason.',
        default: configDefaults.fileSource.maxFileSize,
      }),
    ),
  },
  { additionalProperties: false, title: 'File source', description: 'Messages read from files dropped in a folder.' },
);

const retrySchema = Type.Object(
  {
    attempts: Type.Optional(
      Type.Integer({
        minimum: 0,
        title: 'Attempts',
        description: 'Tries in total, the first included; 0 retries forever.',
        default: configDefaults.destination.retry.attempts,
      }),
    ),
    backoff: Type.Optional(
      StringEnum(['exponential', 'fixed'], {
        title: 'Backoff',
        description: 'exponential doubles the delay after each failure (up to maxDelay); fixed waits `delay` every time.',
        default: configDefaults.destination.retry.backoff,
      }),
    ),
    delay: Type.Optional(
      Duration({
        title: 'Delay',
        description: 'Wait before the first retry.',
        default: configDefaults.destination.retry.delay,
      }),
    ),
    maxDelay: Type.Optional(
      Duration({
        title: 'Maximum delay',
        description: 'Longest wait between two tries with exponential backoff.',
        default: configDefaults.destination.retry.maxDelay,
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'Retry',
    description: 'How a failing delivery is retried.',
    default: configDefaults.destination.retry,
  },
);

const destinationCommon = {
  name: Name({
    title: 'Name',
    description: 'Destination name, unique within its channel; part of queue names and log entries.',
  }),
  order: Type.Optional(
    StringEnum(['fifo', 'parallel'], {
      title: 'Order',
      description:
        'fifo delivers in arrival order and holds back later messages while one is retried (HL7 ADT feeds need this); parallel trades order for throughput.',
      default: configDefaults.destination.order,
    }),
  ),
  retry: Type.Optional(retrySchema),
};

const mllpDestinationSchema = Type.Object(
  {
    ...destinationCommon,
    type: Tag('mllp', 'Send each output over MLLP (HL7 v2 over TCP) and wait for its ACK.'),
    host: Host({ title: 'Host', description: 'The MLLP peer to send to.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, title: 'Port', description: 'TCP port of the peer.' }),
    tls: Type.Optional(
      Type.Object(
        {
          ca: Type.Optional(Path({ title: 'CA', description: 'CA certificate (PEM) the peer must chain to; default: the system CAs. Verification is never turned off.' })),
          cert: Type.Optional(Path({ title: 'Client certificate', description: 'Client certificate (PEM) for peers that require one.' })),
          key: Type.Optional(Path({ title: 'Client key', description: 'Private key (PEM) of the client certificate.' })),
          servername: Type.Optional(
            Host({ title: 'Server name', description: 'Name the peer certificate must carry (and SNI), when it differs from host.' }),
          ),
        },
        { additionalProperties: false, title: 'TLS', description: 'MLLP over TLS; `tls: {}` verifies against the system CAs.' },
      ),
    ),
    ackTimeout: Type.Optional(
      Duration({
        title: 'ACK timeout',
        description: 'How long to wait for the ACK; then the send counts as a transient failure and the connection is reset.',
        default: configDefaults.mllpDestination.ackTimeout,
      }),
    ),
  },
  { additionalProperties: false, title: 'MLLP destination', description: 'Sends each output to an MLLP peer and checks its ACK.' },
);

const fileDestinationSchema = Type.Object(
  {
    ...destinationCommon,
    type: Tag('file', 'Write each message to its own file.'),
    dir: Path({ title: 'Folder', description: 'Folder the files are written to; relative to this file.' }),
    filename: Type.Optional(
      Type.String({
        // Tokens only, no path separators and no "..": the name must stay inside `dir`.
        pattern: `^(?!\\.{1,2}$)(?!.*\\.\\.)(?:[^{}/\\\\]|\\{(?:${filenameTokens.join('|')})\\})+$`,
        patternErrorMessage: `may use only the tokens ${filenameTokens.map((t) => `{${t}}`).join(' ')}, and no "/", "\\" or ".."`,
        title: 'File name',
        description: `File name per message. Tokens: ${filenameTokens.map((t) => `{${t}}`).join(' ')}. The message id keeps names unique and lets receivers drop duplicates.`,
        default: configDefaults.file.filename,
        examples: ['{id}.hl7', '{channel}-{date}-{time}-{controlId}.hl7'],
      }),
    ),
    onExists: Type.Optional(
      StringEnum(['suffix', 'error', 'overwrite'], {
        title: 'If the name exists',
        description:
          'When the name is taken by a file with other content (two messages with the same MSH-10, say): suffix writes the new file as name-<message id> before the extension (nothing lost, the queue never stops); error puts the message in error with FILE_EXISTS; overwrite replaces the file. A file with the very same content counts as already written (a replay after a crash).',
        default: configDefaults.file.onExists,
      }),
    ),
  },
  { additionalProperties: false, title: 'File destination', description: 'Writes each message to a file.' },
);

const channelDestinationSchema = Type.Object(
  {
    ...destinationCommon,
    type: Tag('channel', 'Hand the message to another channel in this file.'),
    channel: Name({
      title: 'Target channel',
      description: 'Name of the channel that receives the message; its source must be `type: channel`.',
    }),
  },
  {
    additionalProperties: false,
    title: 'Channel destination',
    description: 'Hands each message to another channel.',
  },
);

const httpsDestinationSchema = Type.Object(
  {
    ...destinationCommon,
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
        default: configDefaults.httpsDestination.timeout,
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
              default: configDefaults.httpsDestination.circuitBreaker.failures,
            }),
          ),
          cooldown: Type.Optional(
            Duration({
              title: 'Cool-down',
              description: 'How long an open breaker fails deliveries at once before letting one probe through.',
              default: configDefaults.httpsDestination.circuitBreaker.cooldown,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Circuit breaker',
          description: 'Stops hammering an endpoint that keeps failing.',
          default: configDefaults.httpsDestination.circuitBreaker,
        },
      ),
    ),
  },
  { additionalProperties: false, title: 'HTTPS destination', description: 'POSTs each message to a URL.' },
);

const postgresDestinationSchema = Type.Object(
  {
    ...destinationCommon,
    type: Tag('postgres', 'Run a parameterized SQL statement in PostgreSQL for each output, e.g. INSERT a row.'),
    url: Type.String({
      pattern: '^postgres(?:ql)?://\\S+$',
      patternErrorMessage: 'must be a postgres:// or postgresql:// URL',
      title: 'URL',
      description:
        'The database, as postgres://user:password@host:5432/database; use ${PGPASSWORD} (or any ${ENV_VAR}) to keep the password out of the file, percent-encoded if it has @, : or /.',
      examples: ['postgres://ferry:${PGPASSWORD}@db.example.org:5432/clinic', 'postgresql://postgres@127.0.0.1/test'],
    }),
    sql: Type.String({
      minLength: 1,
      title: 'SQL',
      description:
        'One statement with :name parameters, filled from the JSON object the script returns (an array of objects runs it once per element, in one transaction). :ferry_id (the stable message id), :ferry_channel and :ferry_row (element index) come from Ferry. Values are always sent as parameters, never spliced into the SQL.',
      examples: ['INSERT INTO patients (ferry_id, mrn, name) VALUES (:ferry_id, :mrn, :name) ON CONFLICT (ferry_id) DO NOTHING'],
    }),
    pool: Type.Optional(
      Type.Object(
        {
          max: Type.Optional(
            Type.Integer({
              minimum: 1,
              title: 'Maximum connections',
              description: 'Connections the destination opens at most; deliveries beyond wait for a free one.',
              default: configDefaults.postgres.pool.max,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Pool',
          description: 'The connection pool.',
          default: configDefaults.postgres.pool,
        },
      ),
    ),
    timeout: Type.Optional(
      Duration({
        title: 'Timeout',
        description: 'Longest a connection attempt, or one statement (statement_timeout), may take; then it counts as a transient failure.',
        default: configDefaults.postgres.timeout,
      }),
    ),
  },
  { additionalProperties: false, title: 'PostgreSQL destination', description: 'Writes each output to PostgreSQL with a parameterized statement.' },
);

const websocketDestinationSchema = Type.Object(
  {
    ...destinationCommon,
    type: Tag('websocket', 'Publish each output to the subscribers of a WebSocket topic (engine.websocket).'),
    topic: Type.Optional(
      Type.String({
        pattern: '^[a-z0-9][a-z0-9_-]*(?:\\.[a-z0-9_-]+)*$',
        maxLength: 200,
        patternErrorMessage: 'must be dot-separated parts of a-z, 0-9, "_" and "-", such as lab.results',
        title: 'Topic',
        description:
          'The topic every output is published to. Without it, each output must be a push envelope {"topic", "args", "kwargs"} naming its own topic (what an HTTP pusher source receives).',
        examples: ['adt', 'lab.results'],
      }),
    ),
  },
  { additionalProperties: false, title: 'WebSocket destination', description: 'Publishes each output to a WebSocket topic.' },
);

const channelSchema = Type.Object(
  {
    name: Name({
      title: 'Name',
      description: 'Channel name, unique in this file; part of queue names and file paths.',
    }),
    source: Discriminated([mllpSourceSchema, channelSourceSchema, httpsSourceSchema, fileSourceSchema, pusherSourceSchema], {
      title: 'Source',
      description: 'Where messages come from; `type` selects the kind.',
    }),
    script: Type.Optional(
      Path({
        title: 'Script',
        description:
          'Translator script, relative to this file. Default: channels/<name>.ts if it exists, otherwise messages pass through unchanged.',
      }),
    ),
    scriptLimits: Type.Optional(
      Type.Object(
        {
          memory: Type.Optional(
            Size({
              title: 'Memory',
              description: 'Memory limit of the script sandbox; at least 8MB.',
              default: configDefaults.channel.scriptLimits.memory,
            }),
          ),
          timeout: Type.Optional(
            Duration({
              title: 'Timeout',
              description: 'Time limit for one message; a script that runs longer errors the message.',
              default: configDefaults.channel.scriptLimits.timeout,
            }),
          ),
          maxOutputs: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: maxScriptOutputs,
              title: 'Maximum outputs',
              description: `Outputs one message may produce (returned and ctx.deliver calls together, at most ${maxScriptOutputs}); past it the message errors with SCRIPT_TOO_MANY_OUTPUTS and nothing is queued.`,
              default: configDefaults.channel.scriptLimits.maxOutputs,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Script limits',
          description: 'Limits of the translator sandbox.',
          default: configDefaults.channel.scriptLimits,
        },
      ),
    ),
    concurrency: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Concurrency',
        description: 'Messages translated in parallel; 1 keeps arrival order.',
        default: configDefaults.channel.concurrency,
      }),
    ),
    maxQueued: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum queued',
        description:
          'Unfinished messages (received, not yet sent, filtered or errored) the channel may hold; above it intake refuses new ones with AE (MLLP) or 503 (HTTPS), error QUEUE_FULL, until the backlog drains.',
        default: configDefaults.channel.maxQueued,
      }),
    ),
    dedupe: Type.Optional(
      Type.Object(
        {
          window: Duration({
            title: 'Window',
            description: 'How long after a message its sender (MSH-3, MSH-4) and control id (MSH-10) count as seen.',
          }),
        },
        {
          additionalProperties: false,
          title: 'Duplicate suppression',
          description:
            'A message whose sender and MSH-10 were seen within the window is acknowledged again (AA) but not processed twice; the message log keeps it as filtered, MESSAGE_DUPLICATE with the first message id. Off when absent.',
        },
      ),
    ),
    destinations: Type.Array(
      Discriminated([fileDestinationSchema, channelDestinationSchema, httpsDestinationSchema, postgresDestinationSchema, mllpDestinationSchema, websocketDestinationSchema], {
        title: 'Destination',
        description: 'Where translated messages go; `type` selects the kind.',
      }),
      {
        minItems: 1,
        title: 'Destinations',
        description: 'Every translated message goes to each destination, through its own queue.',
      },
    ),
  },
  {
    additionalProperties: false,
    title: 'Channel',
    description: 'One source, an optional translator script, and one or more destinations.',
  },
);

export const configSchema = Type.Object(
  {
    engine: Type.Optional(engineSchema),
    channels: Type.Array(channelSchema, {
      title: 'Channels',
      description: 'The channels this engine runs.',
    }),
  },
  {
    $schema: 'http://json-schema.org/draft-07/schema#',
    additionalProperties: false,
    title: 'Ferry channels.yaml',
    description: 'Engine settings and the channels a Ferry engine runs.',
  },
);

export type RawConfig = Static<typeof configSchema>;

/** The JSON Schema as committed in engine/channels.schema.json (scripts/write-config-schema.ts writes it). */
export const renderConfigSchema = (): string => `${JSON.stringify(configSchema, null, 2)}\n`;
