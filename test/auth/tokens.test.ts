import test, { type ExecutionContext } from 'ava';
import crypto from 'node:crypto';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { addHmacKey, addToken, listTokens, openTokenTable, revokeToken, type TokenTable, type TokenTableOptions } from '../../engine/auth/tokens.ts';
import { FerryError } from '../../engine/errors.ts';
import { createLogger } from '../../engine/log.ts';
import { eventually, tempDir } from '../helpers/temp.ts';

// The token table on real files: the `ferry token` functions, verify against a table that follows
// the file as it changes (revocations without reopening), last-used times written in batches.

interface LogLine {
  level: number;
  msg: string;
  err?: { message: string };
}

const capture = (): { logger: ReturnType<typeof createLogger>; lines: LogLine[] } => {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: createLogger('debug', { destination: sink }), lines };
};

// Short timings so reloads and flushes happen within a test's patience.
const fast: TokenTableOptions = { debounceMs: 20, pollMs: 200, flushIntervalMs: 300 };

const open = (t: ExecutionContext, file: string, options = fast): { table: TokenTable; lines: LogLine[] } => {
  const { logger, lines } = capture();
  const table = openTokenTable(file, logger, options);
  t.teardown(() => table.close());
  return { table, lines };
};

const tokensFile = async (t: ExecutionContext): Promise<string> => join(await tempDir(t, 'ferry-tokens-'), 'tokens.yaml');

const sha256 = (text: string): string => crypto.createHash('sha256').update(text).digest('hex');

test.serial('verify compares against every stored hash with timingSafeEqual, whichever token matches', async (t) => {
  const file = await tokensFile(t);
  const first = await addToken(file, 'first', ['adt']);
  await addToken(file, 'second', ['adt']);
  const last = await addToken(file, 'last', ['adt']);
  const { table } = open(t, file);

  const original = crypto.timingSafeEqual;
  let calls = 0;
  crypto.timingSafeEqual = (a, b) => {
    calls++;
    return original(a, b);
  };
  t.teardown(() => {
    crypto.timingSafeEqual = original;
  });
  const counted = (token: string): [boolean, number] => {
    calls = 0;
    return [table.verify(token, 'adt').ok, calls];
  };
  t.deepEqual(counted(first), [true, 3]);
  t.deepEqual(counted(last), [true, 3]);
  t.deepEqual(counted(`fy_${'A'.repeat(43)}`), [false, 3]);
  t.deepEqual(counted(''), [false, 3]);
});

test('addToken stores only the hash, in a 0600 file; listTokens shows neither hash nor token', async (t) => {
  const file = await tokensFile(t);
  const token = await addToken(file, 'site-a', ['adt-in', 'lab']);
  t.regex(token, /^fy_[A-Za-z0-9_-]{43}$/);
  t.is(Buffer.from(token.slice(3), 'base64url').length, 32);

  const text = await readFile(file, 'utf8');
  t.false(text.includes(token.slice(3)));
  t.is((await stat(file)).mode & 0o777, 0o600);
  const stored = parse(text) as { tokens: Array<Record<string, unknown>> };
  t.is(stored.tokens.length, 1);
  t.like(stored.tokens[0], { name: 'site-a', hash: sha256(token), channels: ['adt-in', 'lab'] });
  t.true(Math.abs(Date.parse(String(stored.tokens[0]!['createdAt'])) - Date.now()) < 10_000);

  const listed = await listTokens(file);
  t.deepEqual(listed, [{ name: 'site-a', kind: 'token', channels: ['adt-in', 'lab'], createdAt: stored.tokens[0]!['createdAt'] as string }]);
  t.false(JSON.stringify(listed).includes(sha256(token)));
});

test('two adds give two different tokens; names are unique across tokens and HMAC keys', async (t) => {
  const file = await tokensFile(t);
  const a = await addToken(file, 'a', ['adt']);
  const b = await addToken(file, 'b', ['adt']);
  t.not(a, b);
  await addHmacKey(file, 'k', ['adt']);
  for (const [add, name] of [[addToken, 'a'], [addHmacKey, 'a'], [addToken, 'k'], [addHmacKey, 'k']] as const) {
    const error = await t.throwsAsync(add(file, name, ['adt']), { instanceOf: FerryError });
    t.is(error?.code, 'TOKEN_EXISTS');
  }
  t.deepEqual((await listTokens(file)).map((e) => `${e.kind}:${e.name}`), ['token:a', 'token:b', 'hmac:k']);
});

test('bad names and channel lists are refused before the file is touched', async (t) => {
  const file = await tokensFile(t);
  const cases: Array<[string, string[], RegExp]> = [
    ['', ['adt'], /must be 1 to 63 characters/],
    ['../x', ['adt'], /must be 1 to 63 characters/],
    ['ok', [], /at least one channel/],
    ['ok', ['ADT'], /not a channel name/],
    ['ok', ['*', 'adt'], /"\*" already means every channel/],
  ];
  for (const [name, channels, message] of cases) {
    const error = await t.throwsAsync(addToken(file, name, channels), { instanceOf: FerryError, message });
    t.is(error?.code, 'CLI_USAGE');
  }
  await t.throwsAsync(stat(file), { code: 'ENOENT' });
});

test('concurrent adds all land in the file (they take turns on the lock)', async (t) => {
  const file = await tokensFile(t);
  const names = Array.from({ length: 12 }, (_, i) => `site-${i}`);
  const tokens = await Promise.all(names.map((name) => addToken(file, name, ['adt'])));
  t.deepEqual((await listTokens(file)).map((e) => e.name).sort(), [...names].sort());
  const { table } = open(t, file);
  for (const [i, token] of tokens.entries()) t.deepEqual(table.verify(token, 'adt'), { ok: true, name: names[i]! });
  await t.throwsAsync(stat(`${file}.lock`), { code: 'ENOENT' });
});

test('verify: ok, unknown, forbidden, and * for every channel', async (t) => {
  const file = await tokensFile(t);
  const adt = await addToken(file, 'adt-only', ['adt-in']);
  const both = await addToken(file, 'two', ['adt-in', 'lab-in']);
  const all = await addToken(file, 'everything', ['*']);
  const { table } = open(t, file);
  const cases: Array<[string, string, unknown]> = [
    [adt, 'adt-in', { ok: true, name: 'adt-only' }],
    [adt, 'lab-in', { ok: false, reason: 'forbidden' }],
    [both, 'lab-in', { ok: true, name: 'two' }],
    [all, 'anything', { ok: true, name: 'everything' }],
    [`${adt}x`, 'adt-in', { ok: false, reason: 'unknown' }],
    [adt.slice(0, -1), 'adt-in', { ok: false, reason: 'unknown' }],
    [sha256(adt), 'adt-in', { ok: false, reason: 'unknown' }],
    ['', 'adt-in', { ok: false, reason: 'unknown' }],
  ];
  for (const [token, channel, expected] of cases) t.deepEqual(table.verify(token, channel), expected, `${token.slice(0, 8)}… on ${channel}`);
});

test('a revoke and an add reach an open table without reopening it (fs.watch, not the poll)', async (t) => {
  const file = await tokensFile(t);
  const old = await addToken(file, 'old', ['adt']);
  // No polling within the test's time: fs.watch alone must notice.
  const { table, lines } = open(t, file, { ...fast, pollMs: 60_000 });
  t.true(table.verify(old, 'adt').ok);

  const revoked = await revokeToken(file, 'old');
  t.like(revoked, { name: 'old', kind: 'token', channels: ['adt'] });
  await eventually(() => (table.verify(old, 'adt').ok ? undefined : true), 5_000, 'the revoke to be seen');
  t.deepEqual(table.verify(old, 'adt'), { ok: false, reason: 'unknown' });

  const fresh = await addToken(file, 'fresh', ['adt']);
  await eventually(() => (table.verify(fresh, 'adt').ok ? true : undefined), 5_000, 'the add to be seen');
  t.true(lines.some((l) => l.msg === 'token table reloaded'));
});

test('channels changed by hand: the same token turns forbidden on the old channel', async (t) => {
  const file = await tokensFile(t);
  const token = await addToken(file, 'site', ['adt']);
  const { table } = open(t, file);
  const text = await readFile(file, 'utf8');
  await writeFile(file, text.replace('channels: [adt]', 'channels: [lab]'));
  await eventually(() => (table.verify(token, 'adt').ok ? undefined : true), 5_000, 'the edit to be seen');
  t.deepEqual(table.verify(token, 'adt'), { ok: false, reason: 'forbidden' });
  t.deepEqual(table.verify(token, 'lab'), { ok: true, name: 'site' });
});

test('an edit that does not parse keeps the previous table and logs an error; a fix is picked up', async (t) => {
  const file = await tokensFile(t);
  const token = await addToken(file, 'site', ['adt']);
  const good = await readFile(file, 'utf8');
  const { table, lines } = open(t, file);

  await writeFile(file, `${good}\n  - broken: [\n`);
  const logged = await eventually(() => lines.find((l) => l.level === 50), 5_000, 'an error log line');
  t.is(logged.msg, 'tokens file changed but cannot be used; keeping the previous table');
  t.true(table.verify(token, 'adt').ok);

  const fixed = join(file, '..', 'fixed.yaml');
  await writeFile(fixed, good);
  const second = await addToken(fixed, 'second', ['adt']);
  await rename(fixed, file);
  await eventually(() => (table.verify(second, 'adt').ok ? true : undefined), 5_000, 'the fixed file to load');
  t.true(table.verify(token, 'adt').ok);
});

test('a missing file is an empty table until it appears (written by rename, like an editor would)', async (t) => {
  const file = await tokensFile(t);
  const { table, lines } = open(t, file);
  t.deepEqual(table.verify('fy_anything', 'adt'), { ok: false, reason: 'unknown' });
  t.true(lines.some((l) => l.level === 40 && /does not exist yet/.test(l.msg)));

  const elsewhere = join(file, '..', 'staging.yaml');
  const token = await addToken(elsewhere, 'late', ['adt']);
  await rename(elsewhere, file);
  await eventually(() => (table.verify(token, 'adt').ok ? true : undefined), 5_000, 'the new file to load');
});

const invalidFiles: Array<[string, string, RegExp]> = [
  ['not YAML', 'tokens: [\n', /tokens\.yaml: /],
  ['a list at the top', '- a\n', /the file: must be object/],
  ['an unknown key', 'tokenz: []\n', /unknown key "tokenz"/],
  ['a short hash', 'tokens:\n  - { name: a, hash: abc, channels: [adt], createdAt: x }\n', /tokens\[0\]\.hash: must match pattern/],
  ['no channels', `tokens:\n  - { name: a, hash: ${'ab'.repeat(32)}, channels: [], createdAt: x }\n`, /tokens\[0\]\.channels: must NOT have fewer than 1 items/],
  ['a short HMAC secret', 'hmacKeys:\n  - { id: k, secret: short, channels: [adt], createdAt: x }\n', /hmacKeys\[0\]\.secret/],
  [
    'a name used twice',
    `tokens:\n  - { name: a, hash: ${'ab'.repeat(32)}, channels: [adt], createdAt: x }\nhmacKeys:\n  - { id: a, secret: ${'s'.repeat(40)}, channels: [adt], createdAt: x }\n`,
    /the name "a" is used twice/,
  ],
];

for (const [what, text, message] of invalidFiles) {
  test(`opening a file with ${what} throws TOKEN_FILE_INVALID`, async (t) => {
    const file = await tokensFile(t);
    await writeFile(file, text);
    const error = t.throws(() => openTokenTable(file, capture().logger, fast), { instanceOf: FerryError, message });
    t.is(error?.code, 'TOKEN_FILE_INVALID');
    await t.throwsAsync(listTokens(file), { message });
  });
}

test('last use is recorded in memory and written in one batch after the interval, never per request', async (t) => {
  const file = await tokensFile(t);
  const token = await addToken(file, 'busy', ['adt']);
  await addToken(file, 'idle', ['adt']);
  const { table, lines } = open(t, file, { ...fast, flushIntervalMs: 400 });
  const before = Date.now();
  const inode = (await stat(file)).ino;
  for (let i = 0; i < 50; i++) t.true(table.verify(token, 'adt').ok);

  await new Promise((resolve) => setTimeout(resolve, 150));
  t.is((await stat(file)).ino, inode, 'nothing written before the interval');
  t.is((await listTokens(file))[0]!.lastUsedAt, undefined);

  const busy = await eventually(async () => (await listTokens(file)).find((e) => e.name === 'busy' && e.lastUsedAt), 5_000, 'the flush');
  t.true(Date.parse(busy.lastUsedAt!) >= before - 5 && Date.parse(busy.lastUsedAt!) <= Date.now());
  t.is((await listTokens(file)).find((e) => e.name === 'idle')!.lastUsedAt, undefined);
  t.is((await stat(file)).mode & 0o777, 0o600);
  await new Promise((resolve) => setTimeout(resolve, 300)); // past the debounce and a poll
  t.false(lines.some((l) => l.msg === 'token table reloaded'), 'its own write is no change to reload');
  t.true(table.verify(token, 'adt').ok);
});

test('close() writes pending last-use at once, is safe twice, and does not bring back a token revoked meanwhile', async (t) => {
  const file = await tokensFile(t);
  const kept = await addToken(file, 'kept', ['adt']);
  const gone = await addToken(file, 'gone', ['adt']);
  const { table } = open(t, file, { ...fast, flushIntervalMs: 60_000 });
  t.true(table.verify(kept, 'adt').ok);
  t.true(table.verify(gone, 'adt').ok);
  await revokeToken(file, 'gone');

  await Promise.all([table.close(), table.close()]);
  await table.close();
  const entries = await listTokens(file);
  t.deepEqual(entries.map((e) => e.name), ['kept']);
  t.truthy(entries[0]!.lastUsedAt);
});

test('revoking an unknown name throws TOKEN_NOT_FOUND and leaves the file as it was', async (t) => {
  const file = await tokensFile(t);
  await addToken(file, 'a', ['adt']);
  const before = await readFile(file, 'utf8');
  const error = await t.throwsAsync(revokeToken(file, 'b'), { instanceOf: FerryError, message: /no token or HMAC key named "b"/ });
  t.is(error?.code, 'TOKEN_NOT_FOUND');
  t.is(await readFile(file, 'utf8'), before);
});

test('HMAC keys: the secret for the verifier, channel checks after the signature, revocation', async (t) => {
  const file = await tokensFile(t);
  const secret = await addHmacKey(file, 'site-b', ['adt']);
  t.regex(secret, /^fyk_[A-Za-z0-9_-]{43}$/);
  const { table } = open(t, file);
  t.is(table.hmacSecret('site-b'), secret);
  t.is(table.hmacSecret('nobody'), undefined);
  t.deepEqual(table.authorizeHmacKey('site-b', 'adt'), { ok: true, name: 'site-b' });
  t.deepEqual(table.authorizeHmacKey('site-b', 'lab'), { ok: false, reason: 'forbidden' });
  t.deepEqual(table.authorizeHmacKey('nobody', 'adt'), { ok: false, reason: 'unknown' });
  t.deepEqual(table.verify(secret, 'adt'), { ok: false, reason: 'unknown' }, 'an HMAC secret is no bearer token');

  t.like(await revokeToken(file, 'site-b'), { kind: 'hmac', name: 'site-b' });
  await eventually(() => (table.hmacSecret('site-b') === undefined ? true : undefined), 5_000, 'the revoke to be seen');
});

test('comments in a hand-edited file survive the CLI and the last-use flush', async (t) => {
  const file = await tokensFile(t);
  const token = await addToken(file, 'a', ['adt']);
  await writeFile(file, (await readFile(file, 'utf8')).replace('  - name: a', '  # the lab interface, ticket 4711\n  - name: a'));
  const { table } = open(t, file);
  t.true(table.verify(token, 'adt').ok);
  await table.close();
  await addToken(file, 'b', ['adt']);
  const text = await readFile(file, 'utf8');
  t.true(text.includes('# the lab interface, ticket 4711\n  - name: a'));
  t.regex(text, /lastUsedAt: /);
});
