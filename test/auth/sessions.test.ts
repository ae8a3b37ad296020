import test from 'ava';
import { createSessions } from '../../engine/auth/sessions.ts';

// In-memory login sessions: random ids, CSRF tokens, idle expiry, a bounded table.

test('create, touch, peek, end', (t) => {
  let now = 0;
  const sessions = createSessions({ idleMs: 1000, now: () => now });
  const s = sessions.create('bob');
  t.regex(s.id, /^[A-Za-z0-9_-]{43}$/);
  t.regex(s.csrfToken, /^[A-Za-z0-9_-]{43}$/);
  t.not(s.id, s.csrfToken);
  t.not(sessions.create('bob').id, s.id);

  now = 900;
  t.is(sessions.peek(s.id), s, 'peek does not reset the idle clock');
  now = 1001;
  t.is(sessions.peek(s.id), undefined, 'idle past idleMs: gone');

  const u = sessions.create('ann');
  now = 1900;
  t.is(sessions.touch(u.id)?.username, 'ann');
  now = 2800;
  t.is(sessions.touch(u.id)?.username, 'ann', 'touch reset the clock at 1900');
  sessions.end(u.id);
  t.is(sessions.touch(u.id), undefined);
  t.is(sessions.touch('made-up'), undefined);
});

test('past the maximum, the least recently used session goes first', (t) => {
  const sessions = createSessions({ max: 3 });
  const [a, b, c] = ['a', 'b', 'c'].map((name) => sessions.create(name));
  sessions.touch(a!.id);
  const d = sessions.create('d');
  t.is(sessions.peek(b!.id), undefined);
  t.deepEqual([a, c, d].map((s) => sessions.peek(s!.id)?.username), ['a', 'c', 'd']);
});
