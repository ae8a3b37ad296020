// The `https` source: messages POSTed to a path of the engine HTTPS listener, answered 200 once
// stored. What it shares with the pusher (keys, checks, the request handling) is https-receiver.ts.
import { Type } from '@sinclair/typebox';
import type { SourceConfig } from '../config/contract.ts';
import { StringEnum, Tag } from '../config/units.ts';
import type { SourceConnector } from '../connector.ts';
import { checkReceiver, createReceiver, normalizeReceiver, receiverClaims, receiverKeys, type ReceiverConfig } from './https-receiver.ts';

export interface HttpsSourceConfig extends SourceConfig, ReceiverConfig {
  type: 'https';
}

const schema = Type.Object(
  receiverKeys(
    Tag('https', 'Receive messages as HTTP POSTs on a path of the engine HTTPS listener; answer 200 once stored.'),
    StringEnum(['token', 'hmac', 'mtls', 'none'], {
      title: 'Authentication',
      description:
        'token: `Authorization: Bearer <token>` (or a secret_token form field) from the tokens file; hmac: signed requests; mtls: a client certificate signed by the listener CA; none: anyone who reaches the path (must be explicit).',
    }),
  ),
  { additionalProperties: false, title: 'HTTPS source', description: 'Messages POSTed to a path of the engine HTTPS listener.' },
);

export const httpsSourceConnector: SourceConnector<typeof schema, HttpsSourceConfig> = {
  type: 'https',
  schema,
  check: (raw, check) => checkReceiver(raw, check, 'an https source'),
  claims: receiverClaims,
  normalize: (raw) => ({ type: 'https', ...normalizeReceiver(raw), auth: raw.auth }),
  describe: (config) => `https ${config.path}`,
  activity: (config, { httpsUrl }) => `receiving on ${httpsUrl ?? 'https://?'}${config.path}`,
  intakeOptions: () => ({ requireHl7: false }),
  auth: (config) => config.auth,
  httpsPath: (config) => config.path,
  create: (config, context) => createReceiver(config, context, 'an https source'),
};
