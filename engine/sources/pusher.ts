// The HTTP pusher: a path on the engine HTTPS listener taking Crossbar-style pushes
// `{"topic": "…", "args": […], "kwargs": {…}}` from plain web apps (curl will do). It is the https
// receiver (https-receiver.ts) with a stricter body: the same auth (token or hmac), limits, ids and
// "200 once stored" answer, and a 400 naming what is wrong with a body that is not a push. An
// accepted push is a message like any other: logged, searchable, and transformed by the channel's
// script before its websocket destination publishes it.
import { Type } from '@sinclair/typebox';
import type { SourceConfig } from '../config/contract.ts';
import { StringEnum, Tag } from '../config/units.ts';
import type { SourceConnector } from '../connector.ts';
import { pushBodyProblem } from '../push/event.ts';
import { checkReceiver, createReceiver, normalizeReceiver, receiverClaims, receiverKeys, type ReceiverConfig } from './https-receiver.ts';

export interface PusherSourceConfig extends SourceConfig, Omit<ReceiverConfig, 'auth'> {
  type: 'pusher';
  auth: 'token' | 'hmac';
}

const schema = Type.Object(
  receiverKeys(
    Tag('pusher', 'Receive Crossbar-style pushes {"topic", "args", "kwargs"} as HTTP POSTs on a path of the engine HTTPS listener; a malformed one gets 400.'),
    StringEnum(['token', 'hmac'], {
      title: 'Authentication',
      description: 'token: `Authorization: Bearer <token>` from the tokens file; hmac: signed requests (X-Ferry-Signature).',
    }),
  ),
  { additionalProperties: false, title: 'HTTP pusher source', description: 'Push events POSTed as JSON, for websocket destinations to publish.' },
);

export const pusherSourceConnector: SourceConnector<typeof schema, PusherSourceConfig> = {
  type: 'pusher',
  schema,
  check: (raw, check) => checkReceiver(raw, check, 'a pusher source'),
  claims: receiverClaims,
  normalize: (raw) => ({ type: 'pusher', ...normalizeReceiver(raw), auth: raw.auth }),
  describe: (config) => `pusher ${config.path}`,
  activity: (config, { httpsUrl }) => `receiving pushes on ${httpsUrl ?? 'https://?'}${config.path}`,
  intakeOptions: () => ({ requireHl7: false }),
  auth: (config) => config.auth,
  httpsPath: (config) => config.path,
  create: (config, context) => createReceiver(config, context, 'a pusher source', { validate: pushBodyProblem, label: 'pusher' }),
};
