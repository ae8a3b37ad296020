import test from 'ava';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { hashPassword } from '../../engine/auth/passwords.ts';
import { newApiToken, readUsersFile, roleAllows, roles, tokenSha256, watchUsers, writeUsersFile, type User } from '../../engine/auth/users.ts';
import { FerryError } from '../../engine/errors.ts';
import { eventually, tempDir } from '../helpers/temp.ts';

// The users file: its format and checks, how it is written, and the engine's live view of it.

const hash = await hashPassword('pw', { ln: 10, r: 8, p: 1 });

test('roles are ordered viewer < operator < admin', (t) => {
  t.deepEqual(roles, ['viewer', 'operator', 'admin']);
  const table = roles.map((role) => roles.map((needed) => (roleAllows(role, needed) ? 'y' : '-')).join(''));
  t.deepEqual(table, ['y--', 'yy-', 'yyy']);
});

test('API tokens: 256 random bits behind a prefix; only the sha256 is kept', (t) => {
  const a = newApiToken();
  t.regex(a.token, /^ferry_[A-Za-z0-9_-]{43}$/);
  t.is(a.sha256, tokenSha256(a.token));
  t.regex(a.sha256, /^[0-9a-f]{64}$/);
  t.not(newApiToken().token, a.token);
});

test('written with mode 0600 and atomically; read back the same; a missing file is no users', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'users.yaml');
  t.deepEqual(await readUsersFile(file), []);
  const users: User[] = [
    { name: 'ada', role: 'admin', password: hash, token: { sha256: 'a'.repeat(64), createdAt: '2026-01-01T00:00:00.000Z' } },
    { name: 'bob', role: 'viewer', password: hash },
  ];
  await writeUsersFile(file, users);
  t.is((await stat(file)).mode & 0o777, 0o600);
  t.deepEqual(await readdir(dir), ['users.yaml'], 'no temp file left');
  t.deepEqual(await readUsersFile(file), users);
  await writeFile(file, '');
  t.deepEqual(await readUsersFile(file), [], 'an empty file is no users');
});

const invalid: Array<[string, string, RegExp]> = [
  ['not YAML', 'users: [', /users\.yaml: not valid YAML/],
  ['a list at the top', '- a\n', /users\.yaml: must be a mapping with a "users" list/],
  ['users not a list', 'users: 5\n', /users: must be a list/],
  ['an entry not a mapping', 'users: [bob]\n', /users\[0\]: must be a mapping/],
  ['a bad name', `users: [{ name: "Bob Smith", role: admin, password: "${hash}" }]\n`, /users\[0\]\.name: must be 1 to 64 characters/],
  ['a duplicate', `users: [{ name: a, role: admin, password: "${hash}" }, { name: a, role: viewer, password: "${hash}" }]\n`, /users\[1\]\.name: duplicate user "a"/],
  ['an unknown role', `users: [{ name: a, role: root, password: "${hash}" }]\n`, /users\[0\]\.role: must be one of viewer, operator, admin/],
  ['a plain password', 'users: [{ name: a, role: admin, password: secret }]\n', /users\[0\]\.password: must be a hash written by `ferry user add`/],
  ['a bad token', `users: [{ name: a, role: admin, password: "${hash}", token: { sha256: xyz } }]\n`, /users\[0\]\.token: must be \{ sha256, createdAt \}/],
];

for (const [what, text, message] of invalid) {
  test(`a users file with ${what} is USERS_INVALID`, async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'users.yaml');
    await writeFile(file, text);
    const error = await t.throwsAsync(readUsersFile(file), { instanceOf: FerryError, message });
    t.is(error?.code, 'USERS_INVALID');
    t.true(error!.message.startsWith(file));
  });
}

test('watchUsers follows the file: created, changed, broken (previous kept), removed', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'users.yaml');
  const users = await watchUsers(file, pino({ level: 'silent' }), 20);
  t.teardown(() => users.close());
  t.deepEqual(users.list(), []);

  const { token, sha256 } = newApiToken();
  await writeUsersFile(file, [{ name: 'ada', role: 'admin', password: hash, token: { sha256, createdAt: '2026-01-01T00:00:00.000Z' } }]);
  await eventually(() => (users.list().length === 1 ? true : undefined));
  t.is(users.find('ada')?.role, 'admin');
  t.is(users.findByToken(token)?.name, 'ada');
  t.is(users.findByToken(`${token}x`), undefined);
  t.is(users.find('bob'), undefined);

  await writeUsersFile(file, [
    { name: 'ada', role: 'viewer', password: hash },
    { name: 'bob', role: 'operator', password: hash },
  ]);
  await eventually(() => (users.list().length === 2 ? true : undefined));
  t.is(users.find('ada')?.role, 'viewer');
  t.is(users.findByToken(token), undefined, 'the token went with the change');

  for (const [text, what] of [
    ['users: [ { name: broken } ]', 'an invalid edit'],
    ['', 'an empty file (an editor saving in place truncates first)'],
  ]) {
    await writeFile(file, text!);
    await new Promise((resolve) => setTimeout(resolve, 400));
    t.deepEqual(users.list().map((u) => u.name), ['ada', 'bob'], `${what} keeps the users in force`);
  }

  await rm(file);
  t.true(await eventually(() => (users.list().length === 0 ? true : undefined)));
});

test('watchUsers refuses to start on an invalid file', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'users.yaml'), 'users: 5');
  await t.throwsAsync(watchUsers(join(dir, 'users.yaml'), pino({ level: 'silent' })), { message: /USERS_INVALID|users: must be a list/ });
});
