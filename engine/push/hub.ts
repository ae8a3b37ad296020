import { randomBytes } from 'node:crypto';
import type { EventPayload } from './event.ts';

// Topics, their subscribers and their replay buffers, in this process's memory. Knows nothing of
// WebSockets: a subscriber is anything with an id and a `send(frame)`; frames are JSON text,
// serialized once per event and shared by every subscriber.
//
// The delivery rule (docs/connectors.md, "WebSocket push"):
// - Each topic numbers its events `<stream>-<n>`, n going up by one per event. The stream part is
//   new whenever the topic's state is (re)created: at engine start, or after the topic was forgotten
//   (no buffered events and no subscribers).
// - The last `size` events of each topic stay in a replay buffer for `ttl`, and all buffers
//   together hold at most `maxBytes`; past either limit the oldest go first.
// - A subscribe with `lastEventId` gets every buffered event after it, in order, before any live one.
//   When events after it are no longer buffered (dropped by size, ttl or memory), a `gap` frame says
//   how many were lost; when the id is not from the topic's current stream (the engine restarted,
//   the topic was forgotten, or the id is malformed), a `gap` frame with `missed: null` says that
//   an unknown number may have been lost, and the whole buffer follows.
// - Events sent to one connection id are not numbered in the topic and not buffered.

export interface Subscriber {
  readonly connectionId: string;
  /** Sends one frame; the subscriber decides what happens when it cannot keep up. */
  send(frame: string): void;
}

export interface ReplayLimits {
  /** Events kept per topic. */
  size: number;
  ttlMs: number;
  /** Bytes of frames kept over all topics. */
  maxBytes: number;
}

export interface PublishResult {
  id: string;
  /** Subscribers the event was handed to. */
  subscribers: number;
}

export interface HubStats {
  connections: number;
  topics: number;
  bufferedEvents: number;
  bufferedBytes: number;
}

export interface PushHub {
  /** Numbers the event, buffers it and hands it to the topic's subscribers. */
  publish(topic: string, payload: EventPayload): PublishResult;
  /** Sends an event to one connection only; false when no connection has that id. */
  sendTo(connectionId: string, topic: string, payload: EventPayload): boolean;
  connect(subscriber: Subscriber): void;
  /** Forgets a connection and its subscriptions; safe to call twice. */
  disconnect(connectionId: string): void;
  /** Subscribes (again: a repeated subscribe replays again) and sends `subscribed`, any `gap`, then the replay. */
  subscribe(connectionId: string, topic: string, lastEventId?: string): void;
  unsubscribe(connectionId: string, topic: string): boolean;
  subscriptions(connectionId: string): readonly string[];
  /** Drops events past their ttl and forgets idle topics everywhere (publish and subscribe do it per topic). */
  sweep(): void;
  stats(): HubStats;
}

interface Buffered {
  seq: number;
  at: number;
  frame: string;
  bytes: number;
  gone: boolean;
}

interface Topic {
  name: string;
  stream: string;
  seq: number;
  /** Highest seq dropped from the buffer; events up to it can no longer be replayed. */
  droppedUpTo: number;
  events: Buffered[];
  subscribers: Set<string>;
}

// Per-event bookkeeping beyond the frame text, so a flood of tiny events is still bounded by maxBytes.
const EVENT_OVERHEAD_BYTES = 96;
// The publish-order list is rebuilt once it holds more dropped entries than this and than live ones.
const COMPACT_AT = 1024;

const newStream = (): string => randomBytes(4).toString('hex');

export const createPushHub = (limits: ReplayLimits, now: () => number = Date.now): PushHub => {
  const topics = new Map<string, Topic>();
  const connections = new Map<string, { subscriber: Subscriber; topics: Set<string>; direct: number }>();
  // Every buffered event in publish order, across topics: the oldest is dropped first when over maxBytes.
  let order: Array<{ topic: Topic; event: Buffered }> = [];
  let orderHead = 0;
  // Entries of `order` whose event was dropped by its topic (size, ttl) but not yet passed over.
  let orderGone = 0;
  let bufferedBytes = 0;
  let bufferedEvents = 0;

  const dropOldestOf = (topic: Topic): void => {
    const event = topic.events.shift()!;
    event.gone = true;
    orderGone++;
    topic.droppedUpTo = event.seq;
    bufferedBytes -= event.bytes;
    bufferedEvents--;
  };

  const forgetIfIdle = (topic: Topic): void => {
    if (topic.events.length === 0 && topic.subscribers.size === 0 && topics.get(topic.name) === topic) topics.delete(topic.name);
  };

  const expire = (topic: Topic): void => {
    const oldest = now() - limits.ttlMs;
    while (topic.events.length > 0 && topic.events[0]!.at < oldest) dropOldestOf(topic);
  };

  const skipGone = (): void => {
    while (orderHead < order.length && order[orderHead]!.event.gone) {
      orderHead++;
      orderGone--;
    }
  };

  // Keeps `order` at most about twice the live events: a busy topic dropping by size behind a quiet
  // topic's old event would otherwise pile up dropped entries that never reach the front.
  const compactOrder = (): void => {
    if (orderGone > COMPACT_AT && orderGone > bufferedEvents) {
      order = order.slice(orderHead).filter((entry) => !entry.event.gone);
      orderHead = 0;
      orderGone = 0;
    } else if (orderHead > COMPACT_AT && orderHead * 2 > order.length) {
      order = order.slice(orderHead);
      orderHead = 0;
    }
  };

  const enforceMemory = (): void => {
    skipGone();
    while (bufferedBytes > limits.maxBytes && orderHead < order.length) {
      const { topic } = order[orderHead]!;
      // Publish order per topic is its buffer order, so the globally oldest is its topic's first.
      dropOldestOf(topic);
      forgetIfIdle(topic);
      skipGone();
    }
    compactOrder();
  };

  const topicFor = (name: string): Topic => {
    let topic = topics.get(name);
    if (!topic) {
      topic = { name, stream: newStream(), seq: 0, droppedUpTo: 0, events: [], subscribers: new Set() };
      topics.set(name, topic);
    }
    return topic;
  };

  const lastId = (topic: Topic): string | null => (topic.seq === 0 ? null : `${topic.stream}-${topic.seq}`);

  const send = (connectionId: string, frame: string): void => {
    connections.get(connectionId)?.subscriber.send(frame);
  };

  /** The seq after which to replay, or undefined when the id is not of this topic's stream. */
  const seqOf = (topic: Topic, lastEventId: string): number | undefined => {
    const dash = lastEventId.lastIndexOf('-');
    if (dash < 0 || lastEventId.slice(0, dash) !== topic.stream) return undefined;
    const digits = lastEventId.slice(dash + 1);
    if (!/^\d{1,15}$/.test(digits)) return undefined;
    const seq = Number(digits);
    return seq <= topic.seq ? seq : undefined;
  };

  return {
    publish(name, payload) {
      const topic = topicFor(name);
      expire(topic);
      // Numbered only once serialized: an event that cannot be (nested too deeply) leaves no gap.
      const id = `${topic.stream}-${topic.seq + 1}`;
      const frame = JSON.stringify({ type: 'event', topic: name, id, args: payload.args, kwargs: payload.kwargs });
      topic.seq++;
      const event: Buffered = { seq: topic.seq, at: now(), frame, bytes: frame.length * 2 + EVENT_OVERHEAD_BYTES, gone: false };
      if (limits.size > 0) {
        topic.events.push(event);
        order.push({ topic, event });
        bufferedBytes += event.bytes;
        bufferedEvents++;
        while (topic.events.length > limits.size) dropOldestOf(topic);
      } else {
        topic.droppedUpTo = topic.seq;
      }
      // Delivered before memory is enforced: an event larger than the whole budget still reaches
      // the subscribers who are connected now.
      const subscribers = [...topic.subscribers];
      for (const connectionId of subscribers) send(connectionId, frame);
      enforceMemory();
      return { id, subscribers: subscribers.length };
    },

    sendTo(connectionId, topic, payload) {
      const connection = connections.get(connectionId);
      if (!connection) return false;
      const id = `${connectionId}-${connection.direct + 1}`;
      const frame = JSON.stringify({ type: 'event', topic, id, direct: true, args: payload.args, kwargs: payload.kwargs });
      connection.direct++;
      connection.subscriber.send(frame);
      return true;
    },

    connect(subscriber) {
      connections.set(subscriber.connectionId, { subscriber, topics: new Set(), direct: 0 });
    },

    disconnect(connectionId) {
      const connection = connections.get(connectionId);
      if (!connection) return;
      connections.delete(connectionId);
      for (const name of connection.topics) {
        const topic = topics.get(name);
        if (!topic) continue;
        topic.subscribers.delete(connectionId);
        forgetIfIdle(topic);
      }
    },

    subscribe(connectionId, name, lastEventId) {
      const connection = connections.get(connectionId);
      if (!connection) return;
      const topic = topicFor(name);
      expire(topic);
      topic.subscribers.add(connectionId);
      connection.topics.add(name);

      let replay: Buffered[] = [];
      let gap: { missed: number | null; reason: string } | undefined;
      if (lastEventId !== undefined) {
        const after = seqOf(topic, lastEventId);
        if (after === undefined) {
          replay = topic.events;
          gap = { missed: null, reason: 'the last event id is not from this topic stream (the engine restarted or forgot the topic); events may have been missed' };
        } else {
          replay = topic.events.filter((event) => event.seq > after);
          if (topic.droppedUpTo > after) {
            gap = { missed: topic.droppedUpTo - after, reason: 'events expired from the replay buffer' };
          }
        }
      }
      send(connectionId, JSON.stringify({ type: 'subscribed', topic: name, lastEventId: lastId(topic), replay: replay.length }));
      if (gap) send(connectionId, JSON.stringify({ type: 'gap', topic: name, lastEventId, ...gap }));
      for (const event of [...replay]) send(connectionId, event.frame);
      forgetIfIdle(topic);
    },

    unsubscribe(connectionId, name) {
      const connection = connections.get(connectionId);
      if (!connection?.topics.delete(name)) return false;
      const topic = topics.get(name);
      if (topic) {
        topic.subscribers.delete(connectionId);
        forgetIfIdle(topic);
      }
      return true;
    },

    sweep() {
      for (const topic of [...topics.values()]) {
        expire(topic);
        forgetIfIdle(topic);
      }
      skipGone();
      compactOrder();
    },

    subscriptions: (connectionId) => [...(connections.get(connectionId)?.topics ?? [])],

    stats: () => ({ connections: connections.size, topics: topics.size, bufferedEvents, bufferedBytes }),
  };
};
