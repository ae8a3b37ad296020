// Publishes each output to a WebSocket topic through the push hub. "Sent" means handed to the
// topic: numbered, kept in its replay buffer and written to the subscribers connected now, not
// received by every subscriber (a subscriber that is offline gets it on reconnecting with its
// lastEventId while the event is still buffered). A script can address one connection instead,
// with ctx.deliver(body, { connectionId }); such an event is not buffered, and a connection that
// is gone errors the message (connection ids are never reused, so retrying cannot help).
import { Type } from '@sinclair/typebox';
import type { DestinationConfig } from '../config/contract.ts';
import { Tag } from '../config/units.ts';
import type { ConnectorContext, DestinationConnector } from '../connector.ts';
import { FerryError } from '../errors.ts';
import { eventFromOutput } from '../push/event.ts';
import type { PushHub } from '../push/hub.ts';
import type { Delivery, Destination } from './destination.ts';
import { building } from './serialize-failure.ts';

export interface WebSocketDestinationConfig extends DestinationConfig {
  type: 'websocket';
  /** The topic of every output; undefined: each output is a push envelope naming its topic. */
  topic: string | undefined;
}

const schema = Type.Object(
  {
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

/** Publishes one output (or sends it to one connection); returns the stage content. */
const publish = (config: WebSocketDestinationConfig, hub: PushHub, delivery: Delivery): string => {
  const event = eventFromOutput(delivery.content);
  if (typeof event === 'string') throw new FerryError('WS_BAD_EVENT', event);
  // The configured topic wins over an envelope's: the config decides where a channel may publish.
  const topic = config.topic ?? event.topic;
  if (topic === undefined) {
    throw new FerryError('WS_BAD_EVENT', 'the destination has no topic and the output names none: return {"topic": "…", "args": […], "kwargs": {…}}');
  }
  const payload = { args: event.args, kwargs: event.kwargs };
  const connectionId = delivery.meta?.connectionId ?? event.connectionId;
  if (connectionId !== undefined) {
    if (!hub.sendTo(connectionId, topic, payload)) {
      throw new FerryError('WS_CONNECTION_GONE', `no WebSocket connection ${connectionId} is open (it closed, or never existed)`);
    }
    return `sent to connection ${connectionId} (topic ${topic})`;
  }
  const published = hub.publish(topic, payload);
  return `published to ${topic} as ${published.id} (${published.subscribers} subscriber${published.subscribers === 1 ? '' : 's'} connected)`;
};

export const websocketDestination = (config: WebSocketDestinationConfig, { push }: Pick<ConnectorContext, 'push'>): Destination => {
  if (!push) throw new FerryError('CONFIG_INVALID', `destination ${config.name}: a websocket destination needs engine.websocket`);
  return {
    // All of it is in-memory work on the output (the hub serializes the event as it publishes), so
    // any failure repeats on every try: permanent.
    send: async (delivery) => building('the WebSocket event', () => publish(config, push, delivery)),
    async close() {},
  };
};

export const websocketDestinationConnector: DestinationConnector<typeof schema, WebSocketDestinationConfig> = {
  type: 'websocket',
  schema,
  follows: ['connectionId'],
  check(_raw, { fail, engine }) {
    if (!engine.websocket) fail([], 'a websocket destination needs engine.websocket (which needs engine.https)');
  },
  normalize: (raw) => ({ type: 'websocket', topic: raw.topic }),
  create: websocketDestination,
};
