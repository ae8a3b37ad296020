import test from 'ava';
import { runFerry, startEngineProcess } from '../helpers/engine-process.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';

// `ferry start --log`: JSON lines unless a person is reading (a terminal, or --log pretty).

const PROJECT = channelsYaml({
  channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations:
      - { name: archive, type: file, dir: ./out }
`,
});

test('--log pretty writes time, level, message and fields on one line instead of JSON', async (t) => {
  const { dir, configFile } = await tempProject(t, PROJECT);
  const engine = await startEngineProcess(t, configFile, dir, ['--log', 'pretty']);
  t.is(await engine.stop(), 0);
  const lines = engine.output().split('\n');
  t.false(lines.some((line) => line.startsWith('{')), 'no JSON line');
  t.true(lines.some((line) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ferry started \{"admin":"http:\/\/127\.0\.0\.1:\d+","channels":\["adt"\]\}$/.test(line)), engine.output());
  t.true(lines.some((line) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ferry stopped$/.test(line)));

  // What a new user sees at every start: the open admin said once, no redis-server banner, and no
  // (pid) after a level, which would read as the engine's but was redis-server's.
  const noUsers = lines.filter((line) => line.includes('no users'));
  t.is(noUsers.length, 1, engine.output());
  t.regex(noUsers[0]!, /^\[[\d:.]+\] WARN: no users: the admin API needs no login and listens on loopback only \(add one: ferry user add <name> --role admin\) \{"users":"\/.+\/users\.yaml"\}$/);
  t.false(lines.some((line) => /Redis is starting|Server initialized|Configuration loaded/.test(line)), engine.output());
  t.false(lines.some((line) => /^\[[\d:.]+\] \w+ \(\d+\)/.test(line)), engine.output());
  t.true(lines.some((line) => /^\[[\d:.]+\] INFO: embedded redis-server ready \{.*"redisPid":\d+/.test(line)), engine.output());
});

test('--log takes json or pretty', async (t) => {
  const { dir } = await tempProject(t, PROJECT);
  const run = await runFerry(['start', '--log', 'xml'], { cwd: dir });
  t.is(run.code, 2);
  t.regex(run.stderr, /^ferry: CLI_USAGE: --log takes json or pretty \(got "xml"\)\n/);
});
