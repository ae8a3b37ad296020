import test from 'ava';
import { deliveryMessageId, handoffMessageId, isMessageId, messageIdTime, newMessageId } from '../engine/wire/ids.ts';

// ids.ts keeps module state (the last millisecond and random part), so these tests run serially.

const CROCKFORD = /^[0-9A-HJKMNP-TV-Z]{26}$/;

test.serial('ids are 26 Crockford base32 characters (no I, L, O, U)', (t) => {
  for (let i = 0; i < 1000; i++) {
    const id = newMessageId();
    t.regex(id, CROCKFORD);
  }
});

test.serial('10,000 ids in the same millisecond are unique and strictly increasing', (t) => {
  const now = Date.now() + 1;
  const ids = Array.from({ length: 10_000 }, () => newMessageId(now));
  for (let i = 1; i < ids.length; i++) {
    if (!(ids[i - 1] < ids[i])) t.fail(`id ${i} (${ids[i]}) does not sort after ${ids[i - 1]}`);
  }
  t.is(new Set(ids).size, ids.length);
  t.true(ids.every((id) => messageIdTime(id) === now));
});

test.serial('ids keep increasing when the clock steps back', (t) => {
  const now = Date.now() + 10;
  const before = newMessageId(now);
  const later = [newMessageId(now - 5), newMessageId(now - 5), newMessageId(now - 1000)];
  let previous = before;
  for (const id of later) {
    t.true(previous < id, `${id} must sort after ${previous}`);
    t.is(messageIdTime(id), now, 'the time part never goes back');
    previous = id;
  }
});

test.serial('ids from successive milliseconds sort by time', (t) => {
  const start = Date.now() + 20;
  const ids = [start, start + 1, start + 2, start + 1000].map((ms) => newMessageId(ms));
  t.deepEqual([...ids].sort(), ids);
  t.deepEqual(ids.map(messageIdTime), [start, start + 1, start + 2, start + 1000]);
});

const knownTimes: Array<[string, number]> = [
  // The ULID specification's example id.
  ['01ARYZ6S41TSV4RRFFQ69G5FAV', 1469918176385],
  ['0000000000AAAAAAAAAAAAAAAA', 0],
  ['000000000ZAAAAAAAAAAAAAAAA', 31],
  ['0000000010AAAAAAAAAAAAAAAA', 32],
];

for (const [id, time] of knownTimes) {
  test(`messageIdTime(${id}) is ${time}`, (t) => {
    t.is(messageIdTime(id), time);
  });
}

test.serial('messageIdTime round-trips the time newMessageId encodes', (t) => {
  const base = Date.now() + 60_000;
  for (const ms of [base, base + 1, base + 31, base + 32, base + 86_400_000]) {
    t.is(messageIdTime(newMessageId(ms)), ms);
  }
});

test('handoffMessageId is derived, stable, and keeps the parent time', (t) => {
  const parent = '01ARYZ6S41TSV4RRFFQ69G5FAV';
  const id = handoffMessageId(parent, 'to-lab', 1);
  t.is(id, '01ARYZ6S41TSV4RRFFQ69G5FAV-to-lab-1');
  t.is(handoffMessageId(parent, 'to-lab', 1), id, 'a replay gets the same id');
  t.not(handoffMessageId(parent, 'to-lab', 0), id);
  t.not(handoffMessageId(parent, 'to-billing', 1), id);
  t.is(messageIdTime(id), 1469918176385);
});

test('the id sent to receivers: the message id, plus the output index after the first', (t) => {
  t.is(deliveryMessageId({ id: '01ABC', output: 0 }), '01ABC');
  t.is(deliveryMessageId({ id: '01ABC', output: 3 }), '01ABC-3');
});

test('a sender\'s id is taken when it is a ULID, or one derived from it', (t) => {
  const id = newMessageId();
  for (const good of [id, deliveryMessageId({ id, output: 2 }), handoffMessageId(id, 'to-lab', 0)]) t.true(isMessageId(good), good);
  for (const bad of ['', 'ID1', id.toLowerCase(), `${id}-`, `${id}-a/b`, `${id}-${'x'.repeat(161)}`]) t.false(isMessageId(bad), bad);
});
