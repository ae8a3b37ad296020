// The projects (channels.yaml and scripts) the bench runs Ferry on. Every port is 0: the engine picks
// free ones and prints them, so runs never collide with anything else on the machine.

import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { BENCH_SCRIPT } from '../workload.ts';

export type Project = Record<string, string>;

const ENGINE = `engine:
  redis: embedded
  data: ./data
  admin: { host: 127.0.0.1, port: 0 }
`;

/** T1–T3, T5, T6, T8: `channels` MLLP channels (bench-1…) → the ADT translator → one folder, ./out, file per control id. */
export const mllpProject = (channels: number): Project => ({
  'channels/bench.ts': BENCH_SCRIPT,
  'channels.yaml': `${ENGINE}channels:\n${Array.from(
    { length: channels },
    (_, i) => `  - name: bench-${i + 1}
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    script: channels/bench.ts
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "{controlId}.hl7" }
`,
  ).join('')}`,
});

/** T7: messages queue for a file destination whose folder is a file (./out/blocked), so none leaves. */
export const backlogProject = (messages: number): Project => ({
  'out/blocked': 'a file where the folder should be',
  'channels.yaml': `${ENGINE}channels:
  - name: backlog
    source: { type: mllp, host: 127.0.0.1, port: 0 }
    maxQueued: ${messages * 2}
    destinations:
      - name: blocked
        type: file
        dir: ./out/blocked
        retry: { attempts: 0, backoff: fixed, delay: 5s }
`,
});

/** What T4's translator does to the JSON body (Node-RED's function node does the same, node-red.ts). */
export const JSON_TRANSFORM = `order.status = 'received';
order.patient.name = String(order.patient.name).toUpperCase();
order.items = order.items.filter((item) => item.quantity > 0);`;

/** T4: HTTPS with a bearer token → translator → a .json file per message. `certs` holds `ferry certs init`'s files. */
export const httpsProject = (certs: string): Project => ({
  'channels/orders.ts': `export default function (msg: Message) {
  const order = JSON.parse(msg.text);
  ${JSON_TRANSFORM.replaceAll('\n', '\n  ').replace('(item)', '(item: { quantity: number })')}
  return order;
}
`,
  'channels.yaml': `${ENGINE}  https: { host: 127.0.0.1, port: 0, cert: ${path.join(certs, 'server.crt')}, key: ${path.join(certs, 'server.key')} }
channels:
  - name: orders
    source: { type: https, path: /in/orders, auth: token }
    script: channels/orders.ts
    destinations:
      - { name: files, type: file, dir: ./out, filename: "{id}.json" }
`,
});

/** A JSON order of about 1 KB: T4's request body, for Ferry and Node-RED alike. */
export const orderBody = (): string =>
  JSON.stringify({
    orderId: 'ORD-000123',
    placedAt: '2024-01-15T08:30:00Z',
    patient: { mrn: 'MRN123456', name: 'doe, john', birthDate: '1980-01-01', sex: 'M', address: '123 Main St, Springfield, IL 62701' },
    orderedBy: { id: '1234', name: 'Welby, Marcus', department: 'Internal Medicine' },
    items: Array.from({ length: 8 }, (_, i) => ({ code: `LAB${100 + i}`, description: `Laboratory panel number ${i + 1}`, quantity: i % 4, priority: i % 2 ? 'routine' : 'stat' })),
    notes: 'Fasting sample requested. Patient reports penicillin allergy (hives). Call the ward before collection.',
  });

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** T6 idle: the bundled example (channels.yaml and channels/), its ports set to 0. */
export const exampleProject = async (): Promise<Project> => {
  const project: Project = {};
  const copy = async (dir: string): Promise<void> => {
    for (const entry of await readdir(path.join(REPO, dir), { withFileTypes: true })) {
      const name = path.join(dir, entry.name);
      if (entry.isDirectory()) await copy(name);
      else project[name] = await readFile(path.join(REPO, name), 'utf8');
    }
  };
  await copy('channels');
  const config = parse(await readFile(path.join(REPO, 'channels.yaml'), 'utf8')) as {
    engine: { admin: { port: number } };
    channels: Array<{ source: { port?: number } }>;
  };
  config.engine.admin.port = 0;
  for (const channel of config.channels) if (channel.source.port !== undefined) channel.source.port = 0;
  project['channels.yaml'] = stringify(config);
  return project;
};
