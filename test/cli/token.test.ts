import test from 'ava';
import { readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { openTokenTable } from '../../engine/auth/tokens.ts';
import { runFerry } from '../helpers/engine-process.ts';
import { eventually, tempDir } from '../helpers/temp.ts';

// `ferry token add | add-hmac | list | revoke` as processes, on a config whose engine.tokens points
// into a subfolder, with a token table open in this process that must follow every change.

// Receivers that check the table: bearer tokens on adt-in (https) and lab-in (pusher), HMAC keys on
// signed-in; open-in, archive (MLLP) and relay (fed by other channels) check neither.
const channels = `channels:
  - name: adt-in
    source: { type: https, path: /in/adt, auth: token, requireTls: false }
    destinations:
      - { name: d, type: file, dir: out }
  - name: lab-in
    source: { type: pusher, path: /in/lab, auth: token, requireTls: false }
    destinations:
      - { name: d, type: file, dir: out }
  - name: signed-in
    source: { type: https, path: /in/signed, auth: hmac, requireTls: false }
    destinations:
      - { name: d, type: file, dir: out }
  - name: open-in
    source: { type: https, path: /in/open, auth: none, requireTls: false }
    destinations:
      - { name: d, type: file, dir: out }
  - name: archive
    source: { type: mllp, port: 0 }
    destinations:
      - { name: d, type: file, dir: out }
  - name: relay
    source: { type: channel }
    destinations:
      - { name: d, type: file, dir: out }
`;

const config = `engine:
  tokens: ./secrets/tokens.yaml
  https: { port: 8443, plain: true }
${channels}`;

/** The same channels with WebSocket push on: a token's names are also topic grants. */
const websocketConfig = `engine:
  tokens: ./secrets/tokens.yaml
  https: { port: 8443, plain: true }
  websocket: {}
${channels}`;

test('add, list, revoke round trip; a running table follows each change', async (t) => {
  const dir = await tempDir(t, 'ferry-cli-token-');
  await writeFile(join(dir, 'channels.yaml'), config);
  const file = join(dir, 'secrets', 'tokens.yaml');

  const empty = await runFerry(['token', 'list'], { cwd: dir });
  t.is(empty.code, 0);
  t.is(empty.stdout, '');
  t.is(empty.stderr, 'ferry: no tokens in secrets/tokens.yaml (add one with: ferry token add <name> --channel <channel>)\n');

  const added = await runFerry(['token', 'add', 'site-a', '--channel', 'adt-in,lab-in'], { cwd: dir });
  t.is(added.code, 0, added.stderr);
  t.regex(added.stdout, /^fy_[A-Za-z0-9_-]{43}\n$/);
  t.is(added.stderr, 'ferry: token "site-a" for adt-in, lab-in added to secrets/tokens.yaml; this is the only time it is shown (only its SHA-256 hash is stored)\n');
  const token = added.stdout.trim();
  t.false((await readFile(file, 'utf8')).includes(token.slice(3)));
  t.is((await stat(file)).mode & 0o777, 0o600);

  // Last use is written only by close() below, however slow the CLI runs are.
  const table = openTokenTable(file, pino({ level: 'silent' }), { debounceMs: 20, flushIntervalMs: 600_000 });
  t.teardown(() => table.close());
  t.deepEqual(table.verify(token, 'lab-in'), { ok: true, name: 'site-a' });

  const hmac = await runFerry(['token', 'add-hmac', 'site-b', '--channel', 'signed-in', '-c', 'channels.yaml'], { cwd: dir });
  t.is(hmac.code, 0, hmac.stderr);
  t.regex(hmac.stdout, /^fyk_[A-Za-z0-9_-]{43}\n$/);
  t.is(hmac.stderr, 'ferry: HMAC key "site-b" for signed-in added to secrets/tokens.yaml; this is the only time it is shown (give it to the sender now)\n');
  await eventually(() => table.hmacSecret('site-b'), 5_000, 'the new key');
  t.is(table.hmacSecret('site-b'), hmac.stdout.trim());

  const list = await runFerry(['token', 'list'], { cwd: dir });
  t.is(list.code, 0);
  const lines = list.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, /^NAME\s+KIND\s+CHANNELS\s+CREATED\s+LAST USED$/);
  t.regex(lines[1]!, /^site-a\s+token\s+adt-in,lab-in\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+never$/);
  t.regex(lines[2]!, /^site-b\s+hmac\s+signed-in\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+never$/);
  t.is(lines.length, 3);
  const hash = /hash: ([0-9a-f]{64})/.exec(await readFile(file, 'utf8'))![1]!;
  t.false(list.stdout.includes(hash), 'never the hash');
  t.false(list.stdout.includes(hmac.stdout.trim()), 'never the secret');

  await table.close(); // writes site-a's last use
  const used = await runFerry(['token', 'list'], { cwd: dir });
  t.regex(used.stdout.split('\n')[1]!, /^site-a\s+token\s+adt-in,lab-in\s+\S+ \S+Z\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);

  const live = openTokenTable(file, pino({ level: 'silent' }), { debounceMs: 20 });
  t.teardown(() => live.close());
  t.true(live.verify(token, 'adt-in').ok);
  const revoked = await runFerry(['token', 'revoke', 'site-a'], { cwd: dir });
  t.is(revoked.code, 0, revoked.stderr);
  t.is(revoked.stdout, 'ferry: revoked token "site-a" (adt-in, lab-in) in secrets/tokens.yaml; running engines refuse it from their next reload, within a second\n');
  await eventually(() => (live.verify(token, 'adt-in').ok ? undefined : true), 5_000, 'the revoke to reach the open table');
  t.deepEqual(live.verify(token, 'adt-in'), { ok: false, reason: 'unknown' });

  const after = await runFerry(['token', 'list'], { cwd: dir });
  t.deepEqual(after.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['site-b']);
});

test('mistakes: a taken name, no channel, an unknown action or name; unknown channels only warn', async (t) => {
  const dir = await tempDir(t, 'ferry-cli-token-');
  await writeFile(join(dir, 'channels.yaml'), config);
  const run = (...args: string[]) => runFerry(['token', ...args], { cwd: dir });

  const star = await run('add', 'all', '--channel', '*', '--channel', 'nowhere');
  t.is(star.code, 2);
  t.regex(star.stderr, /ferry: CLI_USAGE: "\*" already means every channel; give it alone/);

  const unknown = await run('add', 'a', '--channel', 'adt-in', '--channel', 'nowhere');
  t.is(unknown.code, 0);
  t.regex(unknown.stderr, /^ferry: warning: no channel named "nowhere" in .*channels\.yaml\n/);

  const cases: Array<[string[], number, RegExp]> = [
    [['add', 'a', '--channel', 'adt-in'], 1, /^ferry: TOKEN_EXISTS: "a" already exists in .*tokens\.yaml; revoke it first or pick another name\n$/],
    [['add', 'b'], 2, /ferry: CLI_USAGE: ferry token add needs --channel <channel>\[,<channel>…\]/],
    [['add', '--channel', 'adt-in'], 2, /ferry: CLI_USAGE: ferry token add needs one <name>/],
    [['revoke', 'nobody'], 1, /^ferry: TOKEN_NOT_FOUND: no token or HMAC key named "nobody" in .*tokens\.yaml\n$/],
    [['rotate', 'a'], 2, /ferry: CLI_USAGE: ferry token needs add, add-hmac, list or revoke \(got "rotate"\)\nusage:/],
    [['list', '--channel', 'x'], 2, /ferry: CLI_USAGE: ferry token list takes no --channel/],
  ];
  for (const [args, code, stderr] of cases) {
    const result = await run(...args);
    t.is(result.code, code, args.join(' '));
    t.regex(result.stderr, stderr, args.join(' '));
    t.is(result.stdout, '', args.join(' '));
  }
});

test('a channel that checks no tokens (or no HMAC keys) only warns: the entry is still added', async (t) => {
  const dir = await tempDir(t, 'ferry-cli-token-');
  await writeFile(join(dir, 'channels.yaml'), config);
  const file = join(await realpath(dir), 'channels.yaml');
  const run = (...args: string[]) => runFerry(['token', ...args], { cwd: dir });
  const onlyToken = '(only https and pusher sources with auth: token do)';
  const onlyHmac = '(only https and pusher sources with auth: hmac do)';

  const cases: Array<{ args: string[]; warnings: string[] }> = [
    { args: ['add', 't-mllp', '--channel', 'archive'], warnings: [`channel "archive" in ${file} checks no tokens: its source has type: mllp ${onlyToken}`] },
    {
      args: ['add', 't-mixed', '--channel', 'adt-in,relay', '--channel', 'signed-in,open-in,lab-in'],
      warnings: [
        `channel "relay" in ${file} checks no tokens: its source has type: channel ${onlyToken}`,
        `channel "signed-in" in ${file} checks no tokens: its https source has auth: hmac ${onlyToken}`,
        `channel "open-in" in ${file} checks no tokens: its https source has auth: none ${onlyToken}`,
      ],
    },
    {
      args: ['add-hmac', 'k-mixed', '--channel', 'signed-in,adt-in,lab-in,archive'],
      warnings: [
        `channel "adt-in" in ${file} checks no HMAC keys: its https source has auth: token ${onlyHmac}`,
        `channel "lab-in" in ${file} checks no HMAC keys: its pusher source has auth: token ${onlyHmac}`,
        `channel "archive" in ${file} checks no HMAC keys: its source has type: mllp ${onlyHmac}`,
      ],
    },
    // '*' means every channel, present and future: never a warning, even with no receiver among them.
    { args: ['add', 't-all', '--channel', '*'], warnings: [] },
    { args: ['add-hmac', 'k-all', '--channel', '*'], warnings: [] },
    { args: ['add', 't-ok', '--channel', 'adt-in,lab-in'], warnings: [] },
  ];
  for (const { args, warnings } of cases) {
    const result = await run(...args);
    const label = args.join(' ');
    t.is(result.code, 0, label);
    t.regex(result.stdout, /^fyk?_[A-Za-z0-9_-]{43}\n$/, label);
    const [kind, name] = args[0] === 'add' ? ['token', args[1]] : ['HMAC key', args[1]];
    const added = new RegExp(`^ferry: ${kind} "${name}" for .* added to secrets/tokens\\.yaml; this is the only time it is shown`);
    const lines = result.stderr.trimEnd().split('\n');
    t.deepEqual(lines.slice(0, -1), warnings.map((w) => `ferry: warning: ${w}`), label);
    t.regex(lines.at(-1)!, added, label);
  }
  const list = await run('list');
  t.deepEqual(
    list.stdout.trimEnd().split('\n').slice(1).map((line) => line.split(/\s+/).slice(0, 3).join(' ')),
    ['t-mllp token archive', 't-mixed token adt-in,relay,signed-in,open-in,lab-in', 't-all token *', 't-ok token adt-in,lab-in', 'k-mixed hmac signed-in,adt-in,lab-in,archive', 'k-all hmac *'],
  );
});

test('with WebSocket push a token name is also a topic grant: a note, not a warning; HMAC keys still warn', async (t) => {
  const dir = await tempDir(t, 'ferry-cli-token-');
  await writeFile(join(dir, 'channels.yaml'), websocketConfig);
  const file = join(await realpath(dir), 'channels.yaml');
  const run = (...args: string[]) => runFerry(['token', ...args], { cwd: dir });

  const token = await run('add', 'browser', '--channel', 'archive,lab,adt-in');
  t.is(token.code, 0);
  t.deepEqual(token.stderr.trimEnd().split('\n').slice(0, -1), [
    `ferry: note: channel "archive" in ${file} checks no tokens: its source has type: mllp (as a WebSocket grant it covers topics archive and archive.*)`,
    `ferry: note: no channel named "lab" in ${file} (as a WebSocket grant it covers topics lab and lab.*)`,
  ]);

  // WebSocket subscribers authenticate with bearer tokens only: an HMAC key grants no topic.
  const key = await run('add-hmac', 'signer', '--channel', 'archive,lab,signed-in');
  t.is(key.code, 0);
  t.deepEqual(key.stderr.trimEnd().split('\n').slice(0, -1), [
    `ferry: warning: channel "archive" in ${file} checks no HMAC keys: its source has type: mllp (only https and pusher sources with auth: hmac do)`,
    `ferry: warning: no channel named "lab" in ${file}`,
  ]);
  t.regex(key.stdout, /^fyk_[A-Za-z0-9_-]{43}\n$/);
});
