import test from 'ava';
import { hashPassword, isPasswordHash, verifyNobody, verifyPassword } from '../../engine/auth/passwords.ts';

// scrypt password hashes in their self-describing string form.

const cheap = { ln: 10, r: 8, p: 1 };

test('a hash verifies its password only, and salts differ', async (t) => {
  const a = await hashPassword('correct horse', cheap);
  const b = await hashPassword('correct horse', cheap);
  t.regex(a, /^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  t.not(a, b);
  t.true(await verifyPassword('correct horse', a));
  t.true(await verifyPassword('correct horse', b));
  for (const wrong of ['correct hors', 'correct horse ', 'Correct horse', '']) t.false(await verifyPassword(wrong, a), wrong);
});

test('passwords are compared in Unicode NFC: the same text typed two ways matches', async (t) => {
  const hash = await hashPassword('caf\u00e9', cheap);
  t.true(await verifyPassword('cafe\u0301', hash));
});

test('the default cost is N=2^15, r=8, p=1', async (t) => {
  t.regex(await hashPassword('x'), /^\$scrypt\$ln=15,r=8,p=1\$/);
});

const malformed: Array<[string, string]> = [
  ['empty', ''],
  ['plain text', 'plain text'],
  ['no hash part', '$scrypt$ln=15,r=8,p=1$c2FsdA=='],
  ['missing p', '$scrypt$ln=15,r=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=='],
  ['N too large', '$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=='],
  ['r too large', '$scrypt$ln=15,r=99,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=='],
  ['N = 1', '$scrypt$ln=0,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=='],
  ['salt too short', '$scrypt$ln=15,r=8,p=1$c2E=$aGFzaGhhc2hoYXNoaGFzaA=='],
  ['another algorithm', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA'],
];

for (const [what, stored] of malformed) {
  test(`a malformed hash (${what}) is not a hash and never verifies`, async (t) => {
    t.false(isPasswordHash(stored));
    t.false(await verifyPassword('anything', stored));
  });
}

test('verifyNobody takes about as long as a real verification and is always false', async (t) => {
  await verifyNobody('warm-up');
  const hash = await hashPassword('x');
  let start = performance.now();
  await verifyPassword('y', hash);
  const real = performance.now() - start;
  start = performance.now();
  t.false(await verifyNobody('y'));
  const decoy = performance.now() - start;
  t.log(`verify ${real.toFixed(0)} ms, decoy ${decoy.toFixed(0)} ms`);
  t.true(decoy > real / 3, 'same cost, not an instant answer');
});
