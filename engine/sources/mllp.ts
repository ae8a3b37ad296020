// The `mllp` source: HL7 v2 over MLLP (TCP, or TLS), acknowledged once stored. Its keys and checks
// are here; the sockets are mllp-listener.ts, the framing hl7/mllp.ts, what each frame is answered
// (AA, AE, AR, nothing) mllp-handler.ts.
import { Type } from '@sinclair/typebox';
import path from 'node:path';
import type { SourceConfig } from '../config/contract.ts';
import { Duration, Host, Path, Port, Size, StringEnum, Tag, durationMs, isEntry, resolveOptional, sizeBytes } from '../config/units.ts';
import type { SourceConnector } from '../connector.ts';
import { mllpHandler } from './mllp-handler.ts';
import { mllpListener, type MllpListenerSettings } from './mllp-listener.ts';

export interface MllpSourceConfig extends SourceConfig, MllpListenerSettings {
  type: 'mllp';
}

const defaults = { host: '127.0.0.1', maxFrameSize: '1MB', idleTimeout: '5m', maxConnections: 100, maxConnectionsPerAddress: 10, clientCert: 'none' } as const;

const schema = Type.Object(
  {
    type: Tag('mllp', 'Listen for HL7 v2 over MLLP (TCP) and acknowledge each message once it is stored.'),
    host: Type.Optional(
      Host({
        title: 'Host',
        description: 'Address to listen on; 0.0.0.0 accepts connections on every interface.',
        default: defaults.host,
      }),
    ),
    port: Port({ title: 'Port', description: 'TCP port to listen on; 0 picks a free port.' }),
    maxFrameSize: Type.Optional(
      Size({
        title: 'Maximum frame size',
        description: 'Largest message accepted; a larger frame is refused and the connection closed.',
        default: defaults.maxFrameSize,
      }),
    ),
    idleTimeout: Type.Optional(
      Duration({
        title: 'Idle timeout',
        description:
          'A connection that completes no message for this long is closed; a sender trickling a frame byte by byte counts as idle.',
        default: defaults.idleTimeout,
      }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum connections',
        description: 'Simultaneous client connections; more are refused.',
        default: defaults.maxConnections,
      }),
    ),
    maxConnectionsPerAddress: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum connections per address',
        description:
          'Simultaneous connections from one IP address; more from it are refused, so one client cannot take every connection of the listener. Set it to maxConnections to turn it off.',
        default: defaults.maxConnectionsPerAddress,
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
              default: defaults.clientCert,
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

export const mllpSourceConnector: SourceConnector<typeof schema, MllpSourceConfig> = {
  type: 'mllp',
  schema,
  // Over TLS: the PEM files must exist, and requiring client certificates needs a CA.
  check(raw, { fail, checkFile }) {
    const tls = raw['tls'];
    if (!isEntry(tls)) return;
    for (const key of ['cert', 'key', 'ca']) checkFile(tls[key], ['tls', key]);
    if (tls['clientCert'] === 'require' && tls['ca'] === undefined) {
      fail(['tls', 'clientCert'], 'require needs ca: the CA that client certificates must chain to');
    }
  },
  claims: (raw) => [{ kind: 'port', host: String(raw['host'] ?? defaults.host), port: raw['port'], at: ['port'] }],
  normalize: (raw, dir) => ({
    type: 'mllp',
    host: raw.host ?? defaults.host,
    port: raw.port,
    maxFrameBytes: sizeBytes(raw.maxFrameSize ?? defaults.maxFrameSize),
    idleTimeoutMs: durationMs(raw.idleTimeout ?? defaults.idleTimeout),
    maxConnections: raw.maxConnections ?? defaults.maxConnections,
    maxConnectionsPerAddress: raw.maxConnectionsPerAddress ?? defaults.maxConnectionsPerAddress,
    ...(raw.tls && {
      tls: {
        cert: path.resolve(dir, raw.tls.cert),
        key: path.resolve(dir, raw.tls.key),
        ca: resolveOptional(dir, raw.tls.ca),
        clientCert: raw.tls.clientCert ?? defaults.clientCert,
      },
    }),
  }),
  describe: (config) => `${config.tls ? 'mllp+tls' : 'mllp'} ${config.host}:${config.port}`,
  activity: (config, { port }) => `listening on MLLP${config.tls ? ' over TLS' : ''} port ${port}`,
  intakeOptions: () => ({ requireHl7: true }),
  create: (config, { intake, logger }) => mllpListener({ ...config, logger, handle: mllpHandler(intake, logger) }),
};
