// T4: HTTPS with a bearer token, 50 connections, a ~1 KB JSON body, the same wrk run against Ferry
// (https source → translator → a file per message; counted as delivered only once its file exists)
// and against Node-RED (http in → function → http response; its 2xx responses per second).

import { rm } from 'node:fs/promises';
import path from 'node:path';
import { watchDeliveries } from './deliveries.ts';
import { runFerryCommand, startFerry, writeProject } from './ferry.ts';
import type { NodeRed } from './node-red.ts';
import { cpuByRole, type ProcSample } from './proc-stats.ts';
import { httpsProject, orderBody } from './projects.ts';
import { runWrk, type HttpLoadResult } from './http-load.ts';

const CONNECTIONS = 50;

export interface HttpsMeasure {
  load: HttpLoadResult;
  /** Files within the window, per second. */
  deliveredRate: number;
  /** CPU µs per 2xx answer in the window (Ferry: all its processes; its deliveries lag behind). */
  cpuUsPerAnswer: number;
}

export const measureFerryHttps = async (dir: string, certs: string, seconds: number): Promise<HttpsMeasure> => {
  await writeProject(dir, httpsProject(certs));
  const token = (await runFerryCommand(dir, ['token', 'add', 'bench', '--channel', 'orders', '-c', 'channels.yaml'])).trim();
  const ferry = await startFerry(dir);
  const out = await watchDeliveries(path.join(dir, 'out'), '.json');
  try {
    const before: ProcSample[] = await ferry.sample();
    const load = await runWrk({
      url: `${ferry.httpsUrl}/in/orders`,
      connections: CONNECTIONS,
      seconds,
      body: orderBody(),
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      dir,
    });
    const files = await out.exact();
    const cpu = cpuByRole(before, await ferry.sample());
    const cpuMs = Object.values(cpu).reduce((sum, ms) => sum + ms, 0);
    return { load, deliveredRate: files / load.seconds, cpuUsPerAnswer: (cpuMs * 1000) / Math.max(1, load.ok) };
  } finally {
    out.close();
    await ferry.stop();
    await rm(dir, { recursive: true, force: true });
  }
};

export const measureNodeRed = async (red: NodeRed, token: string, seconds: number, dir: string): Promise<HttpsMeasure> => {
  const cpuBefore = await red.cpuMs();
  const load = await runWrk({
    url: `${red.url}/in/orders`,
    connections: CONNECTIONS,
    seconds,
    body: orderBody(),
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    dir,
  });
  return { load, deliveredRate: load.okRate, cpuUsPerAnswer: (((await red.cpuMs()) - cpuBefore) * 1000) / Math.max(1, load.ok) };
};
