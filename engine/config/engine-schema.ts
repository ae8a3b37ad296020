// The engine section of channels.yaml: Redis, the data folder, the admin listener, the HTTPS
// listener and WebSocket push, retention and timeouts. Its defaults are here with its keys; the
// loader applies them (config/normalize.ts) and its cross-checks are config/engine-checks.ts.

import { Type } from '@sinclair/typebox';
import { AllowIps, Duration, Host, Path, Port, Size, StringEnum, UrlPath } from './units.ts';

/** Default values in YAML terms; the schema advertises them and the loader applies them. */
export const engineDefaults = {
  redis: 'embedded',
  data: './data',
  admin: { host: '127.0.0.1', port: 8470 },
  retention: '30d',
  logLevel: 'info',
  shutdownTimeout: '10s',
  commitTimeout: '5s',
  users: './users.yaml',
  tokens: './tokens.yaml',
  https: { host: '127.0.0.1', clientCert: 'none', plain: false },
  websocket: { path: '/ws', replay: { size: 1000, ttl: '5m', maxBytes: '64MB' }, sendBuffer: '1MB', maxConnections: 1000 },
} as const;

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

// The engine's one HTTPS listener; https sources mount their paths on it.
const httpsListenerSchema = Type.Object(
  {
    host: Type.Optional(
      Host({
        title: 'Host',
        description: 'Address the HTTPS listener binds; 0.0.0.0 accepts connections on every interface.',
        default: engineDefaults.https.host,
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
        default: engineDefaults.https.clientCert,
      }),
    ),
    plain: Type.Optional(
      Type.Boolean({
        title: 'Plain HTTP',
        description: 'Serve plain HTTP without TLS (then cert and key are not needed). Only for a TLS-terminating proxy in front, or tests.',
        default: engineDefaults.https.plain,
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'HTTPS listener',
    description: 'The engine listener that channels with `source: { type: https }` receive on.',
  },
);

// WebSocket push: an endpoint on the HTTPS listener; websocket destinations publish to its topics.
const websocketSchema = Type.Object(
  {
    path: Type.Optional(
      UrlPath({
        title: 'Path',
        description: 'URL path of the WebSocket endpoint on the HTTPS listener (wss://host:port/ws).',
        default: engineDefaults.websocket.path,
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
              default: engineDefaults.websocket.replay.size,
            }),
          ),
          ttl: Type.Optional(
            Duration({
              title: 'TTL',
              description: 'How long an event stays replayable.',
              default: engineDefaults.websocket.replay.ttl,
            }),
          ),
          maxBytes: Type.Optional(
            Size({
              title: 'Maximum bytes',
              description: 'Memory for the replay buffers of all topics together; past it the oldest events go first.',
              default: engineDefaults.websocket.replay.maxBytes,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Replay buffer',
          description: 'What a subscriber that was offline can still get: a reconnect with lastEventId replays what is buffered and says when some was dropped.',
          default: engineDefaults.websocket.replay,
        },
      ),
    ),
    sendBuffer: Type.Optional(
      Size({
        title: 'Send buffer',
        description: 'Unsent data allowed per connection; a subscriber that falls further behind is disconnected (close code 4429) rather than buffered for.',
        default: engineDefaults.websocket.sendBuffer,
      }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum connections',
        description: 'Simultaneous WebSocket connections; more are refused with 503.',
        default: engineDefaults.websocket.maxConnections,
      }),
    ),
    allowIps: Type.Optional(
      AllowIps({
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

export const engineSchema = Type.Object(
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
          default: engineDefaults.redis,
          errorMessage: 'must be "embedded" or a redis:// or rediss:// URL',
          examples: ['embedded', 'redis://127.0.0.1:6379', 'rediss://user:password@redis.example.org:6380/0'],
        },
      ),
    ),
    data: Type.Optional(
      Path({
        title: 'Data folder',
        description: 'Folder for the message log and the embedded Redis files; relative to this file.',
        default: engineDefaults.data,
      }),
    ),
    admin: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(
            Host({
              title: 'Admin host',
              description: 'Address the admin API and web UI listen on; 0.0.0.0 exposes them on every interface.',
              default: engineDefaults.admin.host,
            }),
          ),
          port: Type.Optional(
            Port({
              title: 'Admin port',
              description: 'TCP port of the admin API and web UI; 0 picks a free port.',
              default: engineDefaults.admin.port,
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
          default: engineDefaults.admin,
        },
      ),
    ),
    retention: Type.Optional(
      Duration({
        title: 'Retention',
        description: 'How long the message log keeps messages and their content.',
        default: engineDefaults.retention,
      }),
    ),
    logLevel: Type.Optional(
      StringEnum(logLevels, {
        title: 'Log level',
        description: 'Least severe level the engine logs.',
        default: engineDefaults.logLevel,
      }),
    ),
    shutdownTimeout: Type.Optional(
      Duration({
        title: 'Shutdown timeout',
        description: 'How long a stop waits for in-flight messages before closing anyway.',
        default: engineDefaults.shutdownTimeout,
      }),
    ),
    commitTimeout: Type.Optional(
      Duration({
        title: 'Commit timeout',
        description:
          'How long intake waits for the message log to commit a message before answering AE (MLLP) or 503 (HTTPS) instead of holding the sender (a stalled disk); the sender keeps the message and resends.',
        default: engineDefaults.commitTimeout,
      }),
    ),
    https: Type.Optional(httpsListenerSchema),
    websocket: Type.Optional(websocketSchema),
    users: Type.Optional(
      Path({
        title: 'Users file',
        description:
          'Admin users, roles, password hashes and API token hashes, written by `ferry user`; relative to this file. Keep it out of git. With no users, the admin API listens on loopback only and needs no login.',
        default: engineDefaults.users,
      }),
    ),
    tokens: Type.Optional(
      Path({
        title: 'Tokens file',
        description:
          'Bearer tokens (as SHA-256 hashes) and HMAC keys that https sources with auth: token or hmac accept, written by `ferry token`; relative to this file. Keep it out of git. Running engines reload it on every change.',
        default: engineDefaults.tokens,
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'Engine',
    description: 'Engine-wide settings; every key is optional.',
  },
);
