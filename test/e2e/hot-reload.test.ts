import test, { type ExecutionContext } from 'ava';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MllpClient } from '../../engine/clients/mllp.ts';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import { adtMessage } from '../helpers/hl7.ts';
import { openMllpClient, sendForAck } from '../helpers/mllp.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// Editing a channel script while `ferry start` runs: a good edit takes over from the next message, a
// broken one is reported while the previous version keeps running, and a script that throws for one
// message errors that message only.

interface ScriptStatus {
  file: string;
  version: string;
  loadedAt: string;
  error?: { code: string; message: string; at: string };
}

interface ChannelInfo {
  name: string;
  state: string;
  script: ScriptStatus | null;
  lastError: string | null;
  counts: Record<string, number>;
}

interface MessageDetail {
  id: string;
  status: string;
  controlId: string;
  error: string | null;
  outputs: string[];
  stages: Array<{ stage: string; status: string; error: string | null }>;
}

const hl7 = (controlId: string, mrn: string, receiver = 'FERRY'): string => adtMessage({ controlId, mrn, receiver });

/** Version `tag` of the script: it stamps MSH-5 with the tag, so each output shows which version ran. */
const script = (tag: string, extra = ''): string => `// version ${tag}
export default function (msg: Message, ctx: Context) {${extra}
  msg.set('MSH-5', '${tag}');
  ctx.log('stamped ${tag}');
  return msg;
}
`;

interface Project {
  dir: string;
  engine: EngineProcess;
  client: MllpClient;
}

const startProject = async (t: ExecutionContext, firstScript: string): Promise<Project> => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "{controlId}.hl7" }
`,
    }),
    { 'channels/adt.ts': firstScript },
  );
  const engine = await startEngineProcess(t, configFile, dir);
  return { dir, engine, client: openMllpClient(t, port) };
};

const channel = async (engine: EngineProcess): Promise<ChannelInfo> => {
  const { body } = await engine.api<ChannelInfo[]>('/api/channels');
  return body.find((c) => c.name === 'adt')!;
};

/** Sends one message, checks its AA, and returns the file the channel wrote for it. */
const sendAndCollect = async (t: ExecutionContext, { dir, client }: Project, controlId: string, mrn = 'MRN1'): Promise<string> => {
  const ack = await sendForAck(client, hl7(controlId, mrn));
  t.is(ack.code, 'AA');
  t.is(ack.controlId, controlId);
  return eventually(() => readFile(join(dir, 'out', `${controlId}.hl7`), 'latin1').catch(() => undefined), 15_000, `out/${controlId}.hl7`);
};

/** Saves the way most editors do: write a temp file next to it, then rename it over the script. */
const saveAtomically = async (dir: string, text: string): Promise<void> => {
  const temp = join(dir, 'channels', '.adt.ts.swp');
  await writeFile(temp, text);
  await rename(temp, join(dir, 'channels', 'adt.ts'));
};

test('edits take over from the next message; a broken edit keeps the previous version running', async (t) => {
  const project = await startProject(t, script('V1'));
  const { dir, engine } = project;

  const v1 = (await channel(engine)).script!;
  t.is(v1.file, 'channels/adt.ts');
  t.regex(v1.version, /^[0-9a-f]{16}$/);
  t.is(v1.error, undefined);
  t.is(await sendAndCollect(t, project, 'HR0001'), hl7('HR0001', 'MRN1', 'V1'));

  // A good edit, saved by rename.
  await saveAtomically(dir, script('V2'));
  const v2 = await eventually(
    async () => {
      const status = (await channel(engine)).script!;
      return status.version !== v1.version ? status : undefined;
    },
    15_000,
    'the script to reload',
  );
  t.is(v2.error, undefined);
  t.true(Date.parse(v2.loadedAt) >= Date.parse(v1.loadedAt));
  // The log line is written before the version takes over, but stdout may reach us a little later.
  await eventually(() => (engine.output().includes(`"version":"${v2.version}","msg":"script reloaded"`) ? true : undefined), 5_000, 'the reload log line');
  t.is(await sendAndCollect(t, project, 'HR0002'), hl7('HR0002', 'MRN1', 'V2'));

  // A syntax error, saved in place: reported, and V2 keeps running.
  await writeFile(join(dir, 'channels', 'adt.ts'), script('V3').replace("msg.set('MSH-5', 'V3');", "msg.set('MSH-5', 'V3';"));
  const broken = await eventually(
    async () => {
      const status = (await channel(engine)).script!;
      return status.error ? status : undefined;
    },
    15_000,
    'the script error to show',
  );
  t.is(broken.version, v2.version);
  t.is(broken.error!.code, 'SCRIPT_COMPILE');
  // At the ';' of `  msg.set('MSH-5', 'V3';`: column 24, as an editor counts.
  t.is(broken.error!.message, 'channels/adt.ts:3:24: Expected ")" but found ";"');
  await eventually(
    () => (engine.output().includes('"msg":"script reload failed; the previous version keeps running: channels/adt.ts:3:24: Expected \\")\\" but found \\";\\""') ? true : undefined),
    5_000,
    'the reload failure log line',
  );
  t.is((await channel(engine)).state, 'running');
  t.is(await sendAndCollect(t, project, 'HR0003'), hl7('HR0003', 'MRN1', 'V2'));

  // Fixed: the error clears and the fixed version runs.
  await saveAtomically(dir, script('V3'));
  const v3 = await eventually(
    async () => {
      const status = (await channel(engine)).script!;
      return status.error === undefined && status.version !== v2.version ? status : undefined;
    },
    15_000,
    'the fixed script to load',
  );
  t.not(v3.version, v1.version);
  t.is(await sendAndCollect(t, project, 'HR0004'), hl7('HR0004', 'MRN1', 'V3'));

  // Each message's log shows the version that handled it.
  const { body } = await engine.api<{ items: Array<{ id: string; controlId: string }> }>('/api/messages?channel=adt');
  const logs = await Promise.all(
    ['HR0001', 'HR0002', 'HR0003', 'HR0004'].map(async (controlId) => {
      const { id } = body.items.find((m) => m.controlId === controlId)!;
      const detail = (await engine.api<{ stages: Array<{ stage: string; content: string | null }> }>(`/api/messages/${id}`)).body;
      return detail.stages.find((s) => s.stage === 'transform')!.content;
    }),
  );
  t.deepEqual(logs, ['info stamped V1', 'info stamped V2', 'info stamped V2', 'info stamped V3']);
  t.is(await engine.stop(), 0);
});

test('a script that throws for one message: that message errors with the thrown text, the next goes through', async (t) => {
  const project = await startProject(
    t,
    script(
      'V1',
      `
  const mrn = msg.get('PID-3.1');
  if (mrn === 'BOOM') throw new Error(\`patient \${mrn} cannot be archived\`);`,
    ),
  );
  const { dir, engine, client } = project;

  const ack = await sendForAck(client, hl7('HB0001', 'BOOM'));
  // The ACK promises durability, not success: the script runs after it.
  t.is(ack.code, 'AA');
  const { body: list } = await eventually(async () => {
    const result = await engine.api<{ items: Array<{ id: string; status: string }> }>('/api/messages?channel=adt&q=HB0001');
    return result.body.items[0]?.status === 'error' ? result : undefined;
  });
  const { body: failed } = await engine.api<MessageDetail>(`/api/messages/${list.items[0]!.id}`);
  t.is(failed.controlId, 'HB0001');
  t.is(failed.status, 'error');
  // The thrown text, at the throw's place in the user's file (line 4 of script() with the extra lines).
  t.is(failed.error, 'SCRIPT_THREW: channels/adt.ts:4:29: Error: patient BOOM cannot be archived');
  t.deepEqual(
    failed.stages.map((s) => [s.stage, s.status]),
    [['transform', 'error']],
  );
  t.is(failed.stages[0]!.error, failed.error);
  t.deepEqual(failed.outputs, []);

  t.is(await sendAndCollect(t, project, 'HB0002', 'MRN2'), hl7('HB0002', 'MRN2', 'V1'));
  const info = await channel(engine);
  t.is(info.state, 'running');
  t.regex(info.lastError ?? '', /patient BOOM cannot be archived/);
  t.like(info.counts, { received: 2, sent: 1, errored: 1 });
  // Nothing was written for the failed message.
  await t.throwsAsync(readFile(join(dir, 'out', 'HB0001.hl7')), { code: 'ENOENT' });
  t.is(await engine.stop(), 0);
});
