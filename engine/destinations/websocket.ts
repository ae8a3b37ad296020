// Publishes each output to a WebSocket topic through the push hub. "Sent" means handed to the
// topic: numbered, kept in its replay buffer and written to the subscribers connected now, not
// received by every subscriber (a subscriber that is offline gets it on reconnecting with its
// lastEventId while the event is still buffered). A script can address one connection instead,
// with ctx.deliver(body, { connectionId }); such an event is not buffered, and a connection that
// is gone errors the message (connection ids are never reused, so retrying cannot help).
import type { WebSocketDestinationConfig } from '../config.ts';
import { FerryError } from '../errors.ts';
import { eventFromOutput } from '../push/event.ts';
import type { PushHub } from '../push/hub.ts';
import type { Delivery, Destination } from './destination.ts';
import { building } from './serialize-failure.ts';

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

export const websocketDestination = (config: WebSocketDestinationConfig, hub: PushHub): Destination => ({
  // All of it is in-memory work on the output (the hub serializes the event as it publishes), so
  // any failure repeats on every try: permanent.
  send: async (delivery) => building('the WebSocket event', () => publish(config, hub, delivery)),
  async close() {},
});
