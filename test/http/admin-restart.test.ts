import test from 'ava';
import { startEngineProcess, runFerry } from '../helpers/engine-process.ts';
import { connectOutcome } from '../helpers/listener.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { freePort } from '../helpers/temp.ts';

// `ferry start` as a process: a channel stopped through the API stays stopped across a restart,
// and without users a non-loopback admin host is refused at start.

const connects = async (port: number): Promise<boolean> => (await connectOutcome(port)) === 'connected';

const post = async (url: string): Promise<{ status: number; body: any }> => {
  const response = await fetch(url, { method: 'POST' });
  return { status: response.status, body: await response.json() };
};

test('a stopped channel stays stopped after a restart, until started through the API', async (t) => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations: [{ name: archive, type: file, dir: ./out }]
`,
    }),
  );
  const first = await startEngineProcess(t, configFile, dir);
  t.true(await connects(port));
  t.is((await post(`${first.adminUrl}/api/channels/adt/stop`)).body.state, 'stopped');
  t.false(await connects(port));
  t.is(await first.stop(), 0);

  const second = await startEngineProcess(t, configFile, dir);
  t.regex(second.output(), /ferry: channel adt stopped through the admin API; start it there \(POST \/api\/channels\/adt\/start\)/);
  t.like((await second.api('/api/channels/adt')).body, { state: 'stopped' });
  t.false(await connects(port));
  t.is((await post(`${second.adminUrl}/api/channels/adt/start`)).body.state, 'running');
  t.true(await connects(port));
  t.is(await second.stop(), 0);

  const third = await startEngineProcess(t, configFile, dir);
  t.like((await third.api('/api/channels/adt')).body, { state: 'running' });
  t.true(await connects(port));
});

test('no users and a non-loopback admin host: refused at start with ADMIN_NOT_LOOPBACK', async (t) => {
  // Spelled out, not channelsYaml: the admin host is what this test is about.
  const { dir, configFile } = await tempProject(
    t,
    `
engine: { data: ./data, admin: { host: 0.0.0.0, port: 0 } }
channels:
  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    destinations: [{ name: archive, type: file, dir: ./out }]
`,
  );
  const run = await runFerry(['start'], { cwd: dir });
  t.is(run.code, 1);
  t.regex(
    run.stderr,
    /^ferry: ADMIN_NOT_LOOPBACK: engine\.admin\.host is 0\.0\.0\.0 but \/.+\/users\.yaml has no users, and without users the admin API has no login: add one \(ferry user add <name> --role admin\) or listen on 127\.0\.0\.1$/m,
  );

  const added = await runFerry(['user', 'add', 'root', '--role', 'admin'], { cwd: dir, input: 'a long passphrase\n' });
  t.is(added.code, 0, added.stderr);
  const engine = await startEngineProcess(t, configFile, dir);
  t.is((await engine.api('/api/channels')).status, 401);
  t.notRegex(engine.output(), /needs no login/);
});
