// T4's reference: Node-RED, installed with npm into a temp folder when the bench runs (never a
// dependency of Ferry), serving HTTPS with the same certificate as Ferry. Its flow:
//
//   [http in: POST /in/orders] → [function: check the bearer token, same transform as Ferry's
//   translator] → [http response: 200 {"Success":true,"id":<msgid>}, or 401]
//
// Node-RED's http-in node parses the JSON body itself (body-parser); the editor and admin API are
// off (httpAdminRoot: false); its log (info) has nothing per request.

import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../test/helpers/temp.ts';
import { spawnChild } from './children.ts';
import { JSON_TRANSFORM } from './projects.ts';
import { rssBytes, cpuMs } from './proc-stats.ts';

export const NODE_RED_VERSION = '4.1.8'; // 5.x needs Node 22.9+

/** Installs Node-RED into `dir`; resolves with why it could not, or undefined. */
export const installNodeRed = async (dir: string): Promise<string | undefined> => {
  const npm = spawnChild('npm', ['install', '--prefix', dir, `node-red@${NODE_RED_VERSION}`, '--no-audit', '--no-fund', '--loglevel=error'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  npm.child.stderr!.on('data', (chunk) => (stderr += chunk));
  const code = await npm.closed;
  return code === 0 ? undefined : `npm install node-red@${NODE_RED_VERSION} failed (${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
};

export const flow = (token: string): unknown[] => [
  { id: 'bench', type: 'tab', label: 'bench' },
  { id: 'in', type: 'http in', z: 'bench', url: '/in/orders', method: 'post', upload: false, wires: [['transform']] },
  {
    id: 'transform',
    type: 'function',
    z: 'bench',
    outputs: 1,
    func: `if (msg.req.headers.authorization !== ${JSON.stringify(`Bearer ${token}`)}) {
  msg.statusCode = 401;
  msg.payload = { Success: false };
  return msg;
}
const order = msg.payload;
${JSON_TRANSFORM}
msg.payload = { Success: true, id: msg._msgid };
return msg;`,
    wires: [['out']],
  },
  { id: 'out', type: 'http response', z: 'bench', statusCode: '', headers: {}, wires: [] },
];

export interface NodeRed {
  url: string;
  pid: number;
  cpuMs(): Promise<number>;
  rssBytes(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the installed Node-RED in `dir` on a free port; up when it has started its flows. */
export const startNodeRed = async (dir: string, certs: string, token: string): Promise<NodeRed> => {
  const port = await freePort();
  await writeFile(path.join(dir, 'flows.json'), JSON.stringify(flow(token), null, 2));
  await writeFile(
    path.join(dir, 'settings.js'),
    `const fs = require('node:fs');
module.exports = {
  uiHost: '127.0.0.1',
  uiPort: ${port},
  https: { key: fs.readFileSync(${JSON.stringify(path.join(certs, 'server.key'))}), cert: fs.readFileSync(${JSON.stringify(path.join(certs, 'server.crt'))}) },
  flowFile: 'flows.json',
  userDir: ${JSON.stringify(dir)},
  httpAdminRoot: false,
  credentialSecret: false,
  diagnostics: { enabled: false },
  telemetry: { enabled: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`,
  );
  const red = spawnChild(process.execPath, [path.join(dir, 'node_modules', 'node-red', 'red.js'), '--settings', path.join(dir, 'settings.js')], { cwd: dir });
  let output = '';
  red.child.stdout!.on('data', (chunk) => (output += chunk));
  red.child.stderr!.on('data', (chunk) => (output += chunk));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Node-RED did not start its flows within 120 s:\n${output.slice(-2000)}`)), 120_000);
    const check = (): void => {
      if (/Started flows/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    red.child.stdout!.on('data', check);
    void red.closed.then((code) => {
      clearTimeout(timer);
      reject(new Error(`Node-RED exited with ${code}:\n${output.slice(-2000)}`));
    });
  });
  return { url: `https://127.0.0.1:${port}`, pid: red.pid, cpuMs: () => cpuMs(red.pid), rssBytes: () => rssBytes(red.pid), stop: () => red.kill('SIGTERM') };
};
