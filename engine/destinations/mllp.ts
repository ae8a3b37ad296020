// Sends each output over MLLP to a peer and judges its ACK (HL7 v2 ch.2, original and enhanced
// mode). One connection is kept open and reopened on the next send when it drops. The reply decides
// the retry, by class: AA/CA is sent (the ACK text is the stage's content in the message log);
// AE/CE is transient; AR/CR is permanent, with an alert line. No ACK within ackTimeout, an ACK for
// another message (MSA-2 is not the MSH-10 sent) and a reply that is not an ACK are transient, and
// the connection is reset: whatever the peer answers late must not be taken for the next message.
// Outputs that are not HL7 are sent as they are (some peers take anything); only the MSA-2 check
// needs an MSH-10, so it is skipped for them.
import { Type } from '@sinclair/typebox';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { mllpClient, type MllpTlsOptions } from '../clients/mllp.ts';
import type { DestinationConfig } from '../config/contract.ts';
import { Duration, Host, Path, Tag, durationMs, isEntry, resolveOptional } from '../config/units.ts';
import type { DestinationConnector } from '../connector.ts';
import { FerryError, describeError } from '../errors.ts';
import { readAck, type AckReport } from '../hl7/ack.ts';
import { decodeHl7 } from '../hl7/charset.ts';
import { readHeader } from '../hl7/header.ts';
import type { Destination } from './destination.ts';

export interface MllpDestinationConfig extends DestinationConfig {
  type: 'mllp';
  host: string;
  port: number;
  /** MLLP over TLS (always verified); absolute paths of PEM files. */
  tls: { ca: string | undefined; cert: string | undefined; key: string | undefined; servername: string | undefined } | undefined;
  ackTimeoutMs: number;
}

const defaults = { ackTimeout: '30s' } as const;

const schema = Type.Object(
  {
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
        default: defaults.ackTimeout,
      }),
    ),
  },
  { additionalProperties: false, title: 'MLLP destination', description: 'Sends each output to an MLLP peer and checks its ACK.' },
);

/** How much of an unreadable reply is quoted in the error. */
const QUOTED_REPLY_CHARS = 200;

/** MSH-10 of an output, or undefined when the output is not HL7 (nothing to match MSA-2 against). */
const sentControlId = (content: Buffer): string | undefined => {
  try {
    return readHeader(decodeHl7(content).text).controlId || undefined;
  } catch {
    return undefined;
  }
};

/** The reply as text and as an ACK; HL7_NOT_ACK for anything that is not an ACK (not HL7, no MSA). */
const readReply = (reply: Buffer, where: string): { text: string; ack: AckReport } => {
  let text: string;
  try {
    text = decodeHl7(reply).text;
  } catch {
    text = reply.toString('latin1');
  }
  try {
    return { text, ack: readAck(text) };
  } catch (cause) {
    const quoted = JSON.stringify(text.slice(0, QUOTED_REPLY_CHARS));
    throw new FerryError('HL7_NOT_ACK', `${where} answered something that is not an ACK (${describeError(cause)}): ${quoted}`, {
      cause,
      details: { reply: text.slice(0, 2_000) },
    });
  }
};

const readPem = (file: string | undefined, what: string, destination: string): Buffer | undefined => {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new FerryError('CONFIG_INVALID', `destination ${destination}: cannot read tls.${what} ${file}: ${(cause as Error).message}`, { cause });
  }
};

export const mllpDestination = (config: MllpDestinationConfig, deps: { logger: Logger }): Destination => {
  const log = deps.logger.child({ destination: config.name });
  const where = `${config.host}:${config.port}`;
  const tls: MllpTlsOptions | undefined = config.tls && {
    ca: readPem(config.tls.ca, 'ca', config.name),
    cert: readPem(config.tls.cert, 'cert', config.name),
    key: readPem(config.tls.key, 'key', config.name),
    ...(config.tls.servername ? { servername: config.tls.servername } : {}),
  };
  const client = mllpClient({ host: config.host, port: config.port, ackTimeoutMs: config.ackTimeoutMs, ...(tls ? { tls } : {}) });

  return {
    async send(delivery) {
      const controlId = sentControlId(delivery.content);
      let answer: { text: string; ack: AckReport } | undefined;
      await client.send(delivery.content, {
        // Inside the client's exchange, so a bad reply drops the connection before the next send.
        verify: (reply) => {
          answer = readReply(reply, where);
          const acknowledged = answer.ack.controlId;
          if (controlId !== undefined && acknowledged !== controlId) {
            throw new FerryError('MLLP_ACK_MISMATCH', `${where} acknowledged ${JSON.stringify(acknowledged)}, not the ${JSON.stringify(controlId)} just sent; connection reset`, {
              details: { sent: controlId, acknowledged, ack: answer.text },
            });
          }
        },
      });
      const { text, ack } = answer!;
      const reason = [...new Set([ack.text, ack.errorText].filter(Boolean))].join(' — ');
      const said = `${where} answered ${ack.code}${reason ? `: ${reason}` : ''}`;
      const details = { code: ack.code, ack: text };
      switch (ack.code) {
        case 'AA':
        case 'CA':
          return text;
        case 'AE':
        case 'CE':
          throw new FerryError('MLLP_NAK', said, { details });
        case 'AR':
        case 'CR': {
          const error = new FerryError('MLLP_REJECTED', said, { details });
          log.error(
            { alert: true, code: error.code, id: delivery.id, output: delivery.output, controlId, ack: text },
            `ALERT: ${where} rejected message ${delivery.id} with ${ack.code}; it will not be retried`,
          );
          throw error;
        }
        default:
          throw new FerryError('HL7_NOT_ACK', `${where} answered MSA-1 ${JSON.stringify(ack.code)}, which is not an acknowledgement code`, { details });
      }
    },

    close: () => client.close(),
  };
};

export const mllpDestinationConnector: DestinationConnector<typeof schema, MllpDestinationConfig> = {
  type: 'mllp',
  schema,
  // Over TLS, a client certificate needs both halves, and the PEM files must exist.
  check(raw, { fail, checkFile }) {
    const tls = raw['tls'];
    if (!isEntry(tls)) return;
    if ((tls['cert'] === undefined) !== (tls['key'] === undefined)) {
      fail(['tls', tls['cert'] === undefined ? 'key' : 'cert'], 'a client certificate needs both cert and key');
    }
    for (const key of ['ca', 'cert', 'key']) checkFile(tls[key], ['tls', key]);
  },
  normalize: (raw, dir) => ({
    type: 'mllp',
    host: raw.host,
    port: raw.port,
    tls: raw.tls && {
      ca: resolveOptional(dir, raw.tls.ca),
      cert: resolveOptional(dir, raw.tls.cert),
      key: resolveOptional(dir, raw.tls.key),
      servername: raw.tls.servername,
    },
    ackTimeoutMs: durationMs(raw.ackTimeout ?? defaults.ackTimeout),
  }),
  create: mllpDestination,
};
