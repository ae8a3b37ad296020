import test from 'ava';
import { join } from 'node:path';
import { createEventBus, publishingStore, type EngineEvent } from '../engine/events.ts';
import { openMessageStore } from '../engine/store/message-store.ts';
import { tempDir } from './helpers/temp.ts';

// The in-process event bus, and the message log publishing its committed writes on it.

test('subscribers get every event until they unsubscribe; a throwing one does not stop the others', (t) => {
  const errors: unknown[] = [];
  const bus = createEventBus((error) => errors.push(error));
  const seen: EngineEvent[] = [];
  bus.subscribe(() => {
    throw new Error('listener bug');
  });
  const stop = bus.subscribe((event) => seen.push(event));
  bus.publish({ kind: 'channel', channel: 'a' });
  stop();
  bus.publish({ kind: 'channel', channel: 'b' });
  t.deepEqual(seen, [{ kind: 'channel', channel: 'a' }]);
  t.is(errors.length, 2);
});

test('every store write publishes its message id once it has committed', async (t) => {
  const bus = createEventBus();
  const store = publishingStore(openMessageStore(join(await tempDir(t), 'm.db')), bus);
  t.teardown(() => store.close());
  const seen: Array<[string, string | undefined]> = [];
  bus.subscribe((event) => {
    if (event.kind === 'message') seen.push([event.id, store.summary(event.id)?.status]);
  });
  const message = (id: string) => ({ id, channel: 'c', source: 't', raw: Buffer.from('x'), text: 'x', charset: 'UNICODE UTF-8' });
  await store.receive(message('m1'));
  await store.recordTransform('m1', { status: 'transformed', outputs: [Buffer.from('o')], destinations: ['d'], logs: '' });
  await store.recordDelivery('m1', 'd#0', { status: 'sent', attempts: 1 });
  await store.reject(message('m2'), 'HL7_NOT_HL7: no');
  await store.receive(message('m3'));
  await store.recordError('m3', 'COMMIT_FAILED: x');
  await store.receive(message('m4'));
  await store.recordDuplicate('m4', 'MESSAGE_DUPLICATE: duplicate of m1');
  t.deepEqual(seen, [
    ['m1', 'received'],
    ['m1', 'queued'],
    ['m1', 'sent'],
    ['m2', 'error'],
    ['m3', 'received'],
    ['m3', 'error'],
    ['m4', 'received'],
    ['m4', 'filtered'],
  ]);
  t.is(store.load('m1')?.status, 'sent', 'reads pass through');
});

test('a write that does not commit publishes nothing; a removed commit listener hears nothing more', async (t) => {
  const bus = createEventBus();
  const raw = openMessageStore(join(await tempDir(t), 'm.db'));
  const heard: string[] = [];
  const stopHearing = raw.onCommit((id) => heard.push(id));
  const store = publishingStore(raw, bus);
  const seen: string[] = [];
  bus.subscribe((event) => {
    if (event.kind === 'message') seen.push(event.id);
  });
  const message = (id: string) => ({ id, channel: 'c', source: 't', raw: Buffer.from('x'), text: 'x', charset: 'UNICODE UTF-8' });
  await store.receive(message('m1'));
  // Raw bytes are NOT NULL in the log: SQLite refuses the row, and the write fails alone.
  await t.throwsAsync(store.receive({ ...message('m2'), raw: null as unknown as Buffer }), { message: /^message log write failed: NOT NULL constraint failed/ });
  stopHearing();
  await store.recordError('m1', 'COMMIT_FAILED: x');
  await store.close();
  await t.throwsAsync(store.receive(message('m3')), { message: 'the message log is closed' });
  t.deepEqual(seen, ['m1', 'm1']);
  t.deepEqual(heard, ['m1']);
});
