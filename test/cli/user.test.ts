import type { ExecutionContext } from 'ava';
import test from 'ava';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { verifyPassword } from '../../engine/auth/passwords.ts';
import { tokenSha256 } from '../../engine/auth/users.ts';
import { runFerry, startEngineProcess } from '../helpers/engine-process.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually } from '../helpers/temp.ts';

// `ferry user …` as users run it: passwords piped in, the users file it writes, and a running
// engine picking up its changes without a restart.

/** A project folder with one channel; `engine` adds engine settings (a users file elsewhere). */
const project = async (t: ExecutionContext, engine = ''): Promise<string> => {
  const channels = `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations: [{ name: archive, type: file, dir: ./out }]
`;
  return (await tempProject(t, channelsYaml({ engine, channels }))).dir;
};

const usersIn = async (file: string): Promise<any[]> => (parse(await readFile(file, 'utf8')) as { users: any[] }).users;

test('add (password from a pipe), list, token, passwd, remove', async (t) => {
  const dir = await project(t);
  const file = join(dir, 'users.yaml');

  const add = await runFerry(['user', 'add', 'bob', '--role', 'viewer'], { cwd: dir, input: 'secret\n' });
  t.deepEqual([add.code, add.stdout, add.stderr], [0, 'ferry: added viewer "bob" to users.yaml\n', '']);
  t.is((await stat(file)).mode & 0o777, 0o600);
  const text = await readFile(file, 'utf8');
  t.notRegex(text, /secret\n/);
  t.regex(text, /^# Ferry admin users: written by `ferry user`/);
  const [bob] = await usersIn(file);
  t.deepEqual(Object.keys(bob), ['name', 'role', 'password']);
  t.like(bob, { name: 'bob', role: 'viewer' });
  t.regex(bob.password, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  t.true(await verifyPassword('secret', bob.password));
  t.false(await verifyPassword('secret\n', bob.password));

  t.is((await runFerry(['user', 'add', 'Ada', '--role', 'admin', '-c', 'channels.yaml'], { cwd: dir, input: 'pass phrase with spaces' })).code, 0);
  const token = await runFerry(['user', 'token', 'ada'], { cwd: dir });
  t.is(token.code, 0);
  t.regex(token.stdout, /^ferry_[A-Za-z0-9_-]{43}\n$/);
  t.regex(token.stderr, /^ferry: new API token for "ada" \(admin\); this is the only time it is shown, and it replaces any earlier one/);
  const ada = (await usersIn(file)).find((u) => u.name === 'ada');
  t.true(await verifyPassword('pass phrase with spaces', ada.password), 'names are lower-cased, the password kept as given');
  t.is(ada.token.sha256, tokenSha256(token.stdout.trim()));
  t.notRegex(await readFile(file, 'utf8'), new RegExp(token.stdout.trim()));

  const list = await runFerry(['user', 'list'], { cwd: dir });
  t.is(list.code, 0);
  t.regex(list.stdout, /^NAME {2}ROLE {4}API TOKEN\nbob {3}viewer  -\nada {3}admin {3}made \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\n$/);

  t.is((await runFerry(['user', 'passwd', 'bob'], { cwd: dir, input: 'new secret\n' })).code, 0);
  t.true(await verifyPassword('new secret', (await usersIn(file))[0].password));

  const remove = await runFerry(['user', 'remove', 'bob'], { cwd: dir });
  t.deepEqual([remove.code, remove.stdout], [0, 'ferry: removed "bob" from users.yaml\n']);
  t.deepEqual((await usersIn(file)).map((u) => u.name), ['ada']);
});

test('mistakes: exit 2 for usage, 1 for a name that exists or does not', async (t) => {
  const dir = await project(t, 'users: ./secret/people.yaml');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(dir, 'secret'));
  t.is((await runFerry(['user', 'add', 'bob', '--role', 'viewer'], { cwd: dir, input: 'pw\n' })).code, 0);
  t.truthy(await readFile(join(dir, 'secret/people.yaml'), 'utf8'), 'engine.users names the file');

  const cases: Array<[string[], string | undefined, number, RegExp]> = [
    [['user'], undefined, 2, /^ferry: CLI_USAGE: ferry user needs add, passwd, remove, list, token\n/],
    [['user', 'rename', 'bob'], undefined, 2, /ferry user needs add, passwd, remove, list, token \(got "rename"\)/],
    [['user', 'add', 'eve'], 'pw', 2, /ferry user add needs --role viewer\|operator\|admin\n/],
    [['user', 'add', 'eve', '--role', 'root'], 'pw', 2, /needs --role viewer\|operator\|admin \(got "root"\)/],
    [['user', 'add', 'eve', '--role', 'viewer'], undefined, 2, /no password: pipe it in/],
    [['user', 'add', 'eve', '--role', 'viewer'], '\n', 2, /no password: pipe it in/],
    [['user', 'add', 'e ve', '--role', 'viewer'], 'pw', 2, /a user name must be 1 to 64 characters/],
    [['user', 'add', 'bob', '--role', 'admin'], 'pw', 1, /^ferry: USER_EXISTS: user "bob" already exists in secret\/people\.yaml/],
    [['user', 'remove', 'nobody'], undefined, 1, /^ferry: USER_NOT_FOUND: no user "nobody" in secret\/people\.yaml/],
    [['user', 'token', 'nobody'], undefined, 1, /^ferry: USER_NOT_FOUND/],
    [['user', 'list', 'bob'], undefined, 2, /ferry user list takes no name/],
    [['user', 'remove', 'bob', '--role', 'admin'], undefined, 2, /ferry user remove takes no --role/],
  ];
  for (const [args, input, code, stderr] of cases) {
    const run = await runFerry(args, { cwd: dir, ...(input === undefined ? {} : { input }) });
    t.is(run.code, code, args.join(' '));
    t.regex(run.stderr, stderr, args.join(' '));
  }
  const users = parse(await readFile(join(dir, 'secret/people.yaml'), 'utf8')).users;
  t.deepEqual(users.map((u: { name: string; role: string }) => [u.name, u.role]), [['bob', 'viewer']], 'nothing changed');
});

test('list without users says how open the admin is', async (t) => {
  const dir = await project(t);
  const run = await runFerry(['user', 'list'], { cwd: dir });
  t.deepEqual([run.code, run.stdout], [0, '']);
  t.regex(run.stderr, /^ferry: no users in users\.yaml: the admin API listens on loopback only and needs no login/);
});

test('a running engine follows the users file: a new token works, a removed user is refused', async (t) => {
  const dir = await project(t);
  t.is((await runFerry(['user', 'add', 'ops', '--role', 'operator'], { cwd: dir, input: 'pw\n' })).code, 0);
  const engine = await startEngineProcess(t, join(dir, 'channels.yaml'), dir);
  const call = async (path: string, token: string, method = 'GET') =>
    (await fetch(engine.adminUrl + path, { method, headers: { authorization: `Bearer ${token}` } })).status;

  const token = (await runFerry(['user', 'token', 'ops'], { cwd: dir })).stdout.trim();
  await eventually(async () => ((await call('/api/channels', token)) === 200 ? true : undefined), 10_000, 'the token to work');
  t.is(await call('/api/channels/adt/stop', token, 'POST'), 200);
  t.is(await call('/api/audit', token), 403, 'an operator cannot read the audit log');

  const login = await fetch(`${engine.adminUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ops', password: 'pw' }) });
  t.is(login.status, 200);

  t.is((await runFerry(['user', 'remove', 'ops'], { cwd: dir })).code, 0);
  await eventually(async () => ((await call('/api/channels', token)) === 401 ? true : undefined), 10_000, 'the token to stop working');
  // No users left: a loopback admin is open again.
  t.is((await fetch(`${engine.adminUrl}/api/channels`)).status, 200);
});
