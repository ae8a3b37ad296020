import test from 'ava';
import { createPushHub, type ReplayLimits } from '../../engine/push/hub.ts';

// The push hub on its own: numbering, live delivery, the replay buffer and its limits (size, ttl,
// memory), gap notices, and events for one connection. A fake clock drives the ttl.

type Frame = Record<string, unknown> & { type: string };

const setup = (limits: Partial<ReplayLimits> = {}) => {
  let clock = 1_000_000;
  const hub = createPushHub({ size: 100, ttlMs: 60_000, maxBytes: 10 * 1024 * 1024, ...limits }, () => clock);
  const inboxes = new Map<string, Frame[]>();
  const join = (id: string): Frame[] => {
    const inbox: Frame[] = [];
    inboxes.set(id, inbox);
    hub.connect({ connectionId: id, send: (frame) => inbox.push(JSON.parse(frame) as Frame) });
    return inbox;
  };
  const publish = (topic: string, n: number) => hub.publish(topic, { args: [n], kwargs: {} });
  return { hub, join, publish, advance: (ms: number) => (clock += ms) };
};

const args = (frames: Frame[]) => frames.filter((f) => f.type === 'event').map((f) => (f['args'] as unknown[])[0]);
const seqOf = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));

test('ids go up by one per topic, topics are independent, and subscribers get live events', (t) => {
  const { hub, join, publish } = setup();
  const inbox = join('c1');
  hub.subscribe('c1', 'lab');
  t.like(inbox.shift(), { type: 'subscribed', topic: 'lab', lastEventId: null, replay: 0 });

  const a1 = publish('lab', 1);
  const a2 = publish('lab', 2);
  const b1 = publish('adt', 3);
  t.is(seqOf(a1.id), 1);
  t.is(seqOf(a2.id), 2);
  t.is(seqOf(b1.id), 1);
  t.is(a1.id.split('-')[0], a2.id.split('-')[0], 'one stream per topic');
  t.deepEqual([a1.subscribers, b1.subscribers], [1, 0]);
  t.deepEqual(inbox, [
    { type: 'event', topic: 'lab', id: a1.id, args: [1], kwargs: {} },
    { type: 'event', topic: 'lab', id: a2.id, args: [2], kwargs: {} },
  ]);

  t.true(hub.unsubscribe('c1', 'lab'));
  publish('lab', 4);
  t.is(inbox.length, 2, 'nothing after unsubscribe');
  t.false(hub.unsubscribe('c1', 'lab'));
});

test('lastEventId replays what came after it, in order, before live events; no gap when nothing was dropped', (t) => {
  const { hub, join, publish } = setup();
  const ids = [1, 2, 3, 4].map((n) => publish('lab', n).id);
  const inbox = join('c1');
  hub.subscribe('c1', 'lab', ids[1]);
  publish('lab', 5);
  t.like(inbox[0], { type: 'subscribed', lastEventId: ids[3], replay: 2 });
  t.deepEqual(args(inbox), [3, 4, 5]);
  t.false(inbox.some((f) => f.type === 'gap'));

  const current = join('c2');
  hub.subscribe('c2', 'lab', publish('lab', 6).id);
  t.deepEqual(args(current), [], 'up to date: nothing to replay');
});

test('a gap notice counts events dropped by the buffer size', (t) => {
  const { hub, join, publish } = setup({ size: 3 });
  const ids = [1, 2, 3, 4, 5, 6].map((n) => publish('lab', n).id);
  const inbox = join('c1');
  hub.subscribe('c1', 'lab', ids[0]);
  t.like(inbox[0], { type: 'subscribed', replay: 3 });
  t.like(inbox[1], { type: 'gap', topic: 'lab', lastEventId: ids[0], missed: 2 });
  t.deepEqual(args(inbox), [4, 5, 6]);
});

test('events older than the ttl are not replayed, and the gap says so', (t) => {
  const { hub, join, publish, advance } = setup({ ttlMs: 1000 });
  const first = publish('lab', 1).id;
  publish('lab', 2);
  advance(1500);
  publish('lab', 3);
  const inbox = join('c1');
  hub.subscribe('c1', 'lab', first);
  t.like(inbox[1], { type: 'gap', missed: 1 });
  t.deepEqual(args(inbox), [3]);

  advance(1500);
  hub.sweep();
  t.deepEqual(hub.stats(), { connections: 1, topics: 1, bufferedEvents: 0, bufferedBytes: 0 }, 'swept, kept for its subscriber');
  hub.disconnect('c1');
  hub.sweep();
  t.is(hub.stats().topics, 0, 'an idle topic is forgotten');
});

test('an id from another stream (engine restart, forgotten topic, garbage) gets missed: null and the whole buffer', (t) => {
  for (const stale of ['0badc0de-41', 'garbage', '']) {
    const { hub, join, publish } = setup();
    publish('lab', 1);
    publish('lab', 2);
    const inbox = join('c1');
    hub.subscribe('c1', 'lab', stale);
    t.like(inbox[1], { type: 'gap', lastEventId: stale, missed: null }, stale);
    t.deepEqual(args(inbox), [1, 2], stale);
  }
  const { hub, join, publish } = setup();
  const future = publish('lab', 1).id.replace(/-1$/, '-99');
  const inbox = join('c1');
  hub.subscribe('c1', 'lab', future);
  t.like(inbox[1], { type: 'gap', missed: null }, 'an id beyond the last one is not trusted');
});

test('maxBytes bounds all buffers together, dropping the oldest event of any topic first', (t) => {
  // Each frame of these is ~60 characters: ~216 bytes with the bookkeeping, so 1000 bytes hold four.
  const { hub, join, publish } = setup({ maxBytes: 1000 });
  const a1 = publish('a', 1).id;
  publish('b', 2);
  publish('a', 3);
  publish('b', 4);
  publish('a', 5);
  const stats = hub.stats();
  t.is(stats.bufferedEvents, 4);
  t.true(stats.bufferedBytes <= 1000, `${stats.bufferedBytes} bytes`);
  const inbox = join('c1');
  hub.subscribe('c1', 'a', a1);
  t.deepEqual(args(inbox), [3, 5], 'a:1 went first: it was the oldest of all');
  t.false(inbox.some((f) => f.type === 'gap'), 'the subscriber had seen a:1, so it missed nothing');
  const fresh = join('c2');
  hub.subscribe('c2', 'a', a1.replace(/-1$/, '-0'));
  t.like(fresh[1], { type: 'gap', missed: 1 }, 'one that had not seen a:1 is told');
});

test('a busy topic behind a quiet one keeps only the last events of each', (t) => {
  const { hub, publish } = setup({ size: 10, maxBytes: 64 * 1024 });
  publish('quiet', 0);
  for (let n = 1; n <= 50_000; n++) publish('busy', n);
  t.deepEqual(hub.stats().bufferedEvents, 11);
  t.true(hub.stats().bufferedBytes < 64 * 1024);
});

test('size 0 is live only: subscribers get events, a reconnect gets a gap', (t) => {
  const { hub, join, publish } = setup({ size: 0 });
  const live = join('c1');
  hub.subscribe('c1', 'lab');
  const first = publish('lab', 1).id;
  publish('lab', 2);
  t.deepEqual(args(live), [1, 2]);
  const later = join('c2');
  hub.subscribe('c2', 'lab', first);
  t.like(later[1], { type: 'gap', missed: 1 });
  t.deepEqual(args(later), []);
  t.is(hub.stats().bufferedEvents, 0);
});

test('sendTo reaches one connection, unnumbered in the topic and never buffered', (t) => {
  const { hub, join, publish } = setup();
  const one = join('c1');
  const other = join('c2');
  hub.subscribe('c2', 'lab');
  t.true(hub.sendTo('c1', 'lab', { args: ['for you'], kwargs: { a: 1 } }));
  t.false(hub.sendTo('nobody', 'lab', { args: [], kwargs: {} }));
  t.deepEqual(one, [{ type: 'event', topic: 'lab', id: 'c1-1', direct: true, args: ['for you'], kwargs: { a: 1 } }]);
  t.deepEqual(args(other), []);
  t.is(seqOf(publish('lab', 1).id), 1, 'the topic numbering did not move');
  t.is(hub.stats().bufferedEvents, 1);
});

test('a subscriber that disconnects while an event is handed out does not stop the others', (t) => {
  const { hub, join, publish } = setup();
  const inbox: Frame[] = [];
  hub.connect({ connectionId: 'quitter', send: (frame) => frame.includes('"type":"event"') && hub.disconnect('quitter') });
  hub.subscribe('quitter', 'lab');
  hub.connect({ connectionId: 'stayer', send: (frame) => inbox.push(JSON.parse(frame) as Frame) });
  hub.subscribe('stayer', 'lab');
  publish('lab', 1);
  publish('lab', 2);
  t.deepEqual(args(inbox), [1, 2]);
  t.deepEqual(hub.subscriptions('quitter'), []);
  t.is(hub.stats().connections, 1);
});
