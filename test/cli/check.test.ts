import test, { type ExecutionContext } from 'ava';
import { mkdir, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runFerry } from '../helpers/engine-process.ts';
import { tempDir } from '../helpers/temp.ts';

// `ferry check` as users run it, from their project folder: exit code and the exact lines they
// read, which point at channels.yaml or the script by file:line:col.

const CONFIG = `engine:
  data: ./data
channels:
  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations:
      - { name: archive, type: file, dir: ./out }
`;

const GOOD_SCRIPT = `export default function (msg: Message, ctx: Context) {
  msg.set('PID-5.1', msg.get('PID-5.1').toUpperCase());
  ctx.log('mrn', msg.get('PID-3.1'));
  return msg;
}
`;

/** A project folder with channels.yaml and channels/<path> files; returns the folder. */
const project = async (t: ExecutionContext, config: string, files: Record<string, string>): Promise<string> => {
  const dir = await tempDir(t, 'ferry-check-');
  await mkdir(join(dir, 'channels', 'lib'), { recursive: true });
  await writeFile(join(dir, 'channels.yaml'), config);
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, 'channels', file), text);
  return dir;
};

test('a valid config with a type-correct script: exit 0 and the "is valid" line', async (t) => {
  const dir = await project(t, CONFIG, { 'adt.ts': GOOD_SCRIPT });
  const run = await runFerry(['check', '-c', 'channels.yaml'], { cwd: dir });
  t.is(run.stderr, '');
  t.is(run.stdout, `ferry check: ${join(await realpath(dir), 'channels.yaml')} is valid: 1 channel(s), 1 script(s) type-check\n`);
  t.is(run.code, 0);
});

const configErrors = [
  {
    title: 'an unknown channel key',
    config: CONFIG.replace('    destinations:', '    bogus: 1\n    destinations:'),
    lines: ['channels.yaml:6:5 channels[0].bogus: unknown key "bogus"'],
  },
  {
    title: 'unknown destination keys, with a suggestion, and a missing one',
    config: CONFIG.replace('dir: ./out }', 'dir: ./out, filenam: x }\n      - name: copy\n        type: file\n        dirr: ./copy'),
    lines: [
      'channels.yaml:7:50 channels[0].destinations[0].filenam: unknown key "filenam" (did you mean "filename"?)',
      'channels.yaml:8:9 channels[0].destinations[1]: missing required key "dir"',
      'channels.yaml:10:9 channels[0].destinations[1].dirr: unknown key "dirr" (did you mean "dir"?)',
    ],
  },
];

for (const { title, config, lines } of configErrors) {
  test(`config error, ${title}: exit 1 with channels.yaml:line:col and the key path`, async (t) => {
    const dir = await project(t, config, { 'adt.ts': GOOD_SCRIPT });
    const run = await runFerry(['check', '-c', 'channels.yaml'], { cwd: dir });
    t.is(run.stdout, '');
    t.is(run.stderr, `ferry: CONFIG_INVALID: ${lines.join('\n')}\n`);
    t.is(run.code, 1);
  });
}

test('a missing config file: exit 1 with CONFIG_NOT_FOUND', async (t) => {
  const dir = await project(t, CONFIG, { 'adt.ts': GOOD_SCRIPT });
  const run = await runFerry(['check', '-c', 'nope.yaml'], { cwd: dir });
  t.is(run.stderr, 'ferry: CONFIG_NOT_FOUND: config file nope.yaml does not exist\n');
  t.is(run.code, 1);
});

const scriptErrors: Array<{ title: string; files: Record<string, string>; lines: Array<string | RegExp> }> = [
  {
    title: 'a type error',
    files: {
      'adt.ts': `export default function (msg: Message, ctx: Context) {
  ctx.log('checking');
  const mrn: number = msg.get('PID-3.1');
  return msg;
}
`,
    },
    lines: [`channels/adt.ts:3:9: TS2322: Type 'string' is not assignable to type 'number'.`],
  },
  {
    title: 'a forbidden import',
    files: {
      'adt.ts': `// reads a lookup table from disk
import fs from 'node:fs';

export default function (msg: Message) {
  return msg;
}
`,
    },
    lines: [
      'channels/adt.ts:2:16: import "node:fs" is not allowed: scripts can only import relative files inside the channels folder (e.g. "./lib/helpers.ts"); npm packages, node:* modules and absolute paths are not available in the sandbox',
    ],
  },
  {
    // One line, no stack, and the column an editor shows: 36 (Ferry said 37, from esbuild's 36 in bytes from 0).
    title: 'a syntax error after non-ASCII text',
    files: {
      'adt.ts': `export default function (msg: Message) {
  const name = 'Müller'; const x = ;
  return msg;
}
`,
    },
    lines: ['channels/adt.ts:2:36: Unexpected ";"'],
  },
  {
    title: 'a Node global and a type error in an imported lib file',
    files: {
      'adt.ts': `import { shout } from './lib/shout.ts';

export default function (msg: Message, ctx: Context) {
  ctx.log(process.env.HOME);
  return shout(msg);
}
`,
      'lib/shout.ts': `export const shout = (msg: Message): Message => {
  msg.set('PID-5.1', 42);
  return msg;
};
`,
    },
    lines: [
      /^channels\/adt\.ts:4:11: TS2591: Cannot find name 'process'\./,
      `channels/lib/shout.ts:2:22: TS2345: Argument of type 'number' is not assignable to parameter of type 'string'.`,
    ],
  },
];

for (const { title, files, lines } of scriptErrors) {
  test(`script error, ${title}: exit 1 with file:line:col`, async (t) => {
    const dir = await project(t, CONFIG, files);
    const run = await runFerry(['check', '-c', 'channels.yaml'], { cwd: dir });
    t.is(run.stdout, '');
    const printed = run.stderr.trimEnd().split('\n');
    t.is(printed.length, lines.length + 1, run.stderr);
    lines.forEach((line, i) => (typeof line === 'string' ? t.is(printed[i], line) : t.regex(printed[i]!, line)));
    t.is(printed.at(-1), `ferry check: ${lines.length} problem(s) in 1 script(s)`);
    t.is(run.code, 1);
  });
}

const usageCases = [
  { title: 'no command', args: [], code: 2, stdout: /^usage:\n {2}ferry start/, stderr: /^$/ },
  { title: 'an unknown command', args: ['frob'], code: 2, stdout: /^$/, stderr: /^ferry: CLI_USAGE: unknown command "frob"\nusage:\n {2}ferry start/ },
  { title: 'send without a target', args: ['send'], code: 2, stdout: /^$/, stderr: /^ferry: CLI_USAGE: ferry send needs <host:port>\nusage:/ },
  { title: 'send without files', args: ['send', '127.0.0.1:2575'], code: 2, stdout: /^$/, stderr: /ferry send needs at least one file\nusage:/ },
  { title: 'a port out of range', args: ['send', '127.0.0.1:65536', 'x.hl7'], code: 2, stdout: /^$/, stderr: /^ferry: CLI_USAGE: ferry send needs a port from 1 to 65535 \(got 65536\)\nusage:/ },
  { title: 'a bad --timeout', args: ['send', '127.0.0.1:2575', 'x.hl7', '--timeout', 'soon'], code: 2, stdout: /^$/, stderr: /--timeout takes a duration/ },
  { title: '--help', args: ['--help'], code: 0, stdout: /^usage:\n {2}ferry start .*\n.*\n {2}ferry check .*\n {2}ferry send /, stderr: /^$/ },
];

for (const { title, args, code, stdout, stderr } of usageCases) {
  test(`usage: ${title} → exit ${code}`, async (t) => {
    const dir = await tempDir(t, 'ferry-usage-');
    const run = await runFerry(args, { cwd: dir });
    t.regex(run.stdout, stdout);
    t.regex(run.stderr, stderr);
    t.is(run.code, code);
  });
}

// parseArgs' own errors (unknown option, stray positional) are usage mistakes like any other.
test('usage: an unknown option → exit 2 with the usage, no stack trace', async (t) => {
  const dir = await project(t, CONFIG, { 'adt.ts': GOOD_SCRIPT });
  const run = await runFerry(['check', '-c', 'channels.yaml', '--bogus'], { cwd: dir });
  t.regex(run.stderr, /^ferry: CLI_USAGE: .*--bogus/);
  t.notRegex(run.stderr, /\n {4}at /);
  t.is(run.code, 2);
});

// `ferry <command> --help` (or -h): that command's entries of `ferry --help`, on stdout, exit 0.
const commands = ['start', 'check', 'send', 'token', 'certs', 'user'];

test('usage: --help and -h after each command print its part of the usage → exit 0', async (t) => {
  const dir = await tempDir(t, 'ferry-usage-');
  const full = await runFerry(['--help'], { cwd: dir });
  const fullLines = full.stdout.trimEnd().split('\n');
  const seen: string[] = [];
  for (const command of commands) {
    for (const flag of ['--help', '-h']) {
      const run = await runFerry([command, flag], { cwd: dir });
      const label = `ferry ${command} ${flag}`;
      t.is(run.code, 0, label);
      t.is(run.stderr, '', label);
      const lines = run.stdout.trimEnd().split('\n');
      t.is(lines[0], 'usage:', label);
      // Entries of `ferry --help`, in its order, all of them this command's.
      const start = fullLines.indexOf(lines[1]!);
      t.true(start > 0, label);
      t.deepEqual(lines.slice(1), fullLines.slice(start, start + lines.length - 1), label);
      const entries = lines.filter((line) => line.startsWith('  ferry '));
      t.true(entries.length > 0 && entries.every((line) => line.startsWith(`  ferry ${command} `)), label);
      if (flag === '--help') seen.push(...lines.slice(1));
    }
  }
  t.deepEqual(seen, fullLines.slice(1), 'together the commands cover the whole usage');
});

test('usage: --help anywhere among the options wins, even after a mistake; after -- it is a name', async (t) => {
  const dir = await tempDir(t, 'ferry-usage-');
  const help = await runFerry(['token', 'add', 'site-a', '--bogus', '--help'], { cwd: dir });
  t.is(help.code, 0);
  t.regex(help.stdout, /^usage:\n {2}ferry token add /);
  t.notRegex(help.stdout, /ferry (start|check|send|certs|user) /);
  t.is(help.stderr, '');
  const named = await runFerry(['send', '127.0.0.1:2575', '--', '-h'], { cwd: dir });
  t.is(named.stdout, '');
  t.is(named.stderr, 'ferry: CLI_FILE_UNREADABLE: file -h does not exist\n');
  t.is(named.code, 1);
  const unknown = await runFerry(['frob', '--help'], { cwd: dir });
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /^ferry: CLI_USAGE: unknown command "frob"\n/);
});

// Without users the admin API has no login; `ferry start` refuses to put it on the network, and
// `ferry check` says so first, in the same words.
const OPEN_ADMIN = CONFIG.replace('  data: ./data\n', '  data: ./data\n  admin: { host: 0.0.0.0, port: 0 }\n');

test('a non-loopback admin without users: check reports ADMIN_NOT_LOOPBACK as start does, exit 1', async (t) => {
  const dir = await project(t, OPEN_ADMIN, { 'adt.ts': GOOD_SCRIPT });
  const users = join(await realpath(dir), 'users.yaml');
  const refusal = `ferry: ADMIN_NOT_LOOPBACK: engine.admin.host is 0.0.0.0 but ${users} has no users, and without users the admin API has no login: add one (ferry user add <name> --role admin) or listen on 127.0.0.1\n`;
  const check = await runFerry(['check', '-c', 'channels.yaml'], { cwd: dir });
  t.is(check.stdout, '');
  t.is(check.stderr, refusal);
  t.is(check.code, 1);
  const start = await runFerry(['start', '-c', 'channels.yaml'], { cwd: dir });
  t.is(start.stderr, refusal);
  t.is(start.code, 1);

  // With a user there is a login, and the config is valid.
  const add = await runFerry(['user', 'add', 'ada', '--role', 'admin'], { cwd: dir, input: 'a long passphrase\n' });
  t.is(add.code, 0, add.stderr);
  const valid = await runFerry(['check', '-c', 'channels.yaml'], { cwd: dir });
  t.is(valid.stderr, '');
  t.is(valid.stdout, `ferry check: ${join(await realpath(dir), 'channels.yaml')} is valid: 1 channel(s), 1 script(s) type-check\n`);
  t.is(valid.code, 0);
});

test('an invalid users file: check reports USERS_INVALID, as start would, exit 1', async (t) => {
  const dir = await project(t, OPEN_ADMIN, { 'adt.ts': GOOD_SCRIPT });
  await writeFile(join(dir, 'users.yaml'), 'users: [{ name: bob, role: root }]\n');
  const check = await runFerry(['check', '-c', 'channels.yaml'], { cwd: dir });
  t.is(check.stdout, '');
  t.regex(check.stderr, /^ferry: USERS_INVALID: [^\n]*users\.yaml[^\n]*\n$/);
  t.is(check.code, 1);
  const start = await runFerry(['start', '-c', 'channels.yaml'], { cwd: dir });
  t.is(start.stderr, check.stderr);
  t.is(start.code, 1);
});
