import test from 'ava';
import type { Delivery } from '../../engine/destinations/destination.ts';
import { websocketDestination } from '../../engine/destinations/websocket.ts';
import type { FerryError } from '../../engine/errors.ts';
import { createPushHub } from '../../engine/push/hub.ts';

// The websocket destination's own failures: an output the hub cannot serialize fails the same way
// on every try, so it is permanent, and it costs the topic no event number.

const delivery = (content: string, overrides: Partial<Delivery> = {}): Delivery => ({
  id: '01JA0000000000000000000000',
  channel: 'lab',
  destination: 'push',
  output: 0,
  content: Buffer.from(content),
  controlId: 'MSG1',
  receivedAt: Date.now(),
  ...overrides,
});

const setup = () => {
  const hub = createPushHub({ size: 10, ttlMs: 60_000, maxBytes: 1024 * 1024 });
  const frames: Array<Record<string, unknown>> = [];
  hub.connect({ connectionId: 'c1', send: (frame) => frames.push(JSON.parse(frame) as Record<string, unknown>) });
  hub.subscribe('c1', 'lab');
  frames.length = 0;
  const dest = websocketDestination({ name: 'push', type: 'websocket', order: 'fifo', retry: { attempts: 5, backoff: 'exponential', delayMs: 1000, maxDelayMs: 300_000 }, topic: 'lab' }, { push: hub });
  return { dest, frames };
};

const DEEP = `{"doc": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`;

test('an output nested too deeply to serialize as an event is permanent (DESTINATION_SERIALIZE_FAILED), and leaves no gap in the numbering', async (t) => {
  const { dest, frames } = setup();
  t.regex(await dest.send(delivery('{"n": 1}')), /^published to lab as \w+-1 /);
  const error = await t.throwsAsync<FerryError>(dest.send(delivery(DEEP)));
  t.like(error, { code: 'DESTINATION_SERIALIZE_FAILED', permanent: true });
  t.regex(error!.message, /^cannot build the WebSocket event from this output: a value is nested too deeply \(RangeError: Maximum call stack size exceeded\)/);
  t.regex(await dest.send(delivery('{"n": 2}')), /^published to lab as \w+-2 /, 'the failed event took no number');
  t.deepEqual(
    frames.map((f) => f['kwargs']),
    [{ n: 1 }, { n: 2 }],
  );
});

test('to one connection: the same failure, permanent', async (t) => {
  const { dest, frames } = setup();
  const error = await t.throwsAsync<FerryError>(dest.send(delivery(DEEP, { meta: { connectionId: 'c1' } })));
  t.like(error, { code: 'DESTINATION_SERIALIZE_FAILED', permanent: true });
  t.regex(await dest.send(delivery('{"n": 1}', { meta: { connectionId: 'c1' } })), /^sent to connection c1 /);
  t.like(frames, [{ direct: true, id: 'c1-1', kwargs: { n: 1 } }]);
});
