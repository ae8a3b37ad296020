import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { blockedFolder } from '../helpers/blocked-folder.ts';
import { startEngineProcess, type EngineProcess } from '../helpers/engine-process.ts';
import {
  DELIVERY_FILENAME,
  allDelivered,
  checkDeliveries,
  formatReport,
  loadProjectYaml,
  redisPid,
  startLoad,
  watchDeliveries,
  type DeliveryReport,
  type DeliveryWatch,
  type Load,
} from '../helpers/load.ts';
import { tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// Crash safety under load (issue 5, point 1). Several MLLP senders keep sending, each message resent
// until it gets AA, while the engine is killed with SIGKILL, its embedded Redis is killed with
// SIGKILL, or Redis stops answering (SIGSTOP). Afterwards every acknowledged message must have been
// delivered, at least once, in each connection's order (the destinations are fifo), and a message
// delivered twice must carry the same message id (a different id only for a message the sender
// resent after AE or no ACK).

const SENDERS = 4;

interface Project {
  dir: string;
  port: number;
  configFile: string;
}

/** A third destination of channel adt, retried every 200 ms while its folder is blocked. */
const HELD = `      - name: held
        type: file
        dir: ./out/held
        filename: "${DELIVERY_FILENAME}"
        retry: { attempts: 0, backoff: fixed, delay: 200ms }
`;

/** Channel adt (MLLP, fifo file destination, hand-off, `held` adds HELD) → channel mirror (fifo file destination). */
const project = async (t: ExecutionContext, extra: { engine?: string; held?: boolean } = {}): Promise<Project> => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(t, loadProjectYaml(port, { engine: extra.engine, adtDestinations: extra.held ? HELD : '' }));
  return { dir, port, configFile };
};

const watchAll = async (t: ExecutionContext, dir: string, names: string[]): Promise<DeliveryWatch[]> => {
  const watches = await Promise.all(names.map((name) => watchDeliveries(join(dir, 'out', name))));
  t.teardown(() => watches.forEach((w) => w.close()));
  return watches;
};

/** Waits until every acknowledged message is in each watched folder, then checks them all. */
const settle = async (load: Load, watches: DeliveryWatch[], timeoutMs = 60_000): Promise<DeliveryReport[]> => {
  await eventually(() => (watches.every((w) => allDelivered(load, w.names())) ? true : undefined), timeoutMs, 'every acknowledged message delivered').catch(
    () => undefined, // reported below as lost
  );
  return watches.map((w) => checkDeliveries(load, w.names()));
};

const assertClean = (t: ExecutionContext, label: string, report: DeliveryReport): void => {
  t.log(`${label}: ${formatReport(report)}`);
  t.deepEqual(report.lost, [], `${label}: lost`);
  t.deepEqual(report.outOfOrder, [], `${label}: out of order`);
  t.deepEqual(report.unexplained, [], `${label}: delivered under two ids though sent once`);
  t.is(report.delivered, report.acked, label);
};

const ackedSince = async (load: Load, count: number, what: string, timeoutMs = 30_000): Promise<void> => {
  const target = load.acked().length + count;
  await eventually(() => (load.acked().length >= target ? true : undefined), timeoutMs, what);
};

test.serial('the engine killed -9 three times under load: every acknowledged message delivered, in order', async (t) => {
  const { dir, port, configFile } = await project(t);
  const watches = await watchAll(t, dir, ['archive', 'mirror']);
  let engine: EngineProcess = await startEngineProcess(t, configFile, dir);
  const load = startLoad({ port, connections: SENDERS, ackTimeoutMs: 5_000 });
  t.teardown(() => load.stop());

  const recoveries: number[] = [];
  for (let kill = 1; kill <= 3; kill++) {
    await ackedSince(load, 30, `ACKs before kill #${kill}`);
    // A random moment: mid-commit, mid-transform, mid-delivery, mid-hand-off are all likely.
    await sleep(200 + Math.random() * 1500);
    await engine.kill();
    const killedAt = Date.now();
    const deliveredAtKill = watches[0]!.names().length;
    engine = await startEngineProcess(t, configFile, dir);
    await eventually(() => (watches[0]!.names().length > deliveredAtKill ? true : undefined), 30_000, `a delivery after restart #${kill}`);
    recoveries.push(Date.now() - killedAt);
  }
  await ackedSince(load, 30, 'ACKs after the last restart');
  await load.stop();

  const [archive, mirror] = await settle(load, watches);
  t.log(`kill → first delivery after restart (engine start included): ${recoveries.join(', ')} ms`);
  assertClean(t, 'archive', archive!);
  assertClean(t, 'mirror (hand-off)', mirror!);
  t.true(archive!.acked >= 120);
  // The log shows each restart resuming the killed engine's work rather than waiting for its locks.
  t.regex(engine.output(), /"msg":"ferry started"/);
  t.is(await engine.stop(), 0);
});

test.serial('the embedded Redis killed -9 twice under load: restarted, senders not refused, nothing lost, order kept', async (t) => {
  // held is blocked until the end, so its whole backlog sits in Redis through the kills: its folder
  // is a symlink to a file. Unblocking swaps the link (atomically) for one to a folder watched all along.
  const { dir, port, configFile } = await project(t, { held: true });
  const heldFolder = await blockedFolder(join(dir, 'out'), 'held', 'held-real');
  const [archiveWatch, mirrorWatch, heldWatch] = await watchAll(t, dir, ['archive', 'mirror', 'held-real']);
  const engine = await startEngineProcess(t, configFile, dir);
  const load = startLoad({ port, connections: SENDERS, ackTimeoutMs: 20_000 });
  t.teardown(() => load.stop());

  const data = join(dir, 'data');
  const pids = [(await redisPid(data))!];
  for (let kill = 1; kill <= 2; kill++) {
    await ackedSince(load, 40, `ACKs before Redis kill #${kill}`);
    await sleep(Math.random() * 500);
    process.kill(pids.at(-1)!, 'SIGKILL');
    const killedAt = Date.now();
    const next = await eventually(
      async () => {
        const pid = await redisPid(data);
        return pid !== undefined && !pids.includes(pid) && engine.output().includes(`"redisPid":${pid},"restarts":${kill},`) ? pid : undefined;
      },
      20_000,
      `redis-server restart #${kill}`,
    );
    pids.push(next);
    t.log(`Redis kill #${kill}: back as pid ${next} after ${Date.now() - killedAt} ms`);
    const health = await eventually(async () => {
      const response = await fetch(`${engine.adminUrl}/healthz`);
      return response.status === 200 ? ((await response.json()) as { redis: string }) : undefined;
    });
    t.is(health.redis, 'ok');
    await ackedSince(load, 20, `ACKs after Redis restart #${kill}`);
  }
  await load.stop();
  // Redis is back within a second, well inside the commit timeout: senders waited, nobody got AE.
  t.deepEqual(
    load.attempts.filter((a) => a.outcome !== 'AA'),
    [],
  );

  // Unblock held: the backlog that lived in Redis through both kills is delivered, in order.
  await heldFolder.unblock();
  const [archive, mirror, held] = await settle(load, [archiveWatch!, mirrorWatch!, heldWatch!]);
  assertClean(t, 'archive', archive!);
  assertClean(t, 'mirror (hand-off)', mirror!);
  assertClean(t, 'held (backlog through the kills)', held!);

  const adt = await eventually(async () => {
    const { body } = await engine.api<Array<{ name: string; state: string; counts: Record<string, number> }>>('/api/channels');
    const info = body.find((c) => c.name === 'adt')!;
    return info.counts.sent === load.acked().length ? info : undefined;
  });
  t.is(adt.state, 'running');
  t.like(adt.counts, { received: load.acked().length, sent: load.acked().length, errored: 0 });
  t.is(await engine.stop(), 0);
});

test.serial('Redis not answering (SIGSTOP): messages are still acknowledged, once in the message log, and delivered when it answers again', async (t) => {
  const { dir, port, configFile } = await project(t, { engine: 'commitTimeout: 1s' });
  const watches = await watchAll(t, dir, ['archive', 'mirror']);
  const engine = await startEngineProcess(t, configFile, dir);
  const load = startLoad({ port, connections: 2, ackTimeoutMs: 5_000, retryDelayMs: 200 });
  t.teardown(() => load.stop());
  await ackedSince(load, 20, 'ACKs before Redis stops');

  const pid = (await redisPid(join(dir, 'data')))!;
  process.kill(pid, 'SIGSTOP');
  let continued = false;
  t.teardown(() => {
    if (!continued) process.kill(pid, 'SIGCONT');
  });
  // The message log is what makes a message durable: intake goes on acknowledging while Redis hangs.
  await ackedSince(load, 20, 'ACKs while Redis is stopped');
  // The health check answers while Redis hangs (bounded PING), and says degraded.
  const health = await fetch(`${engine.adminUrl}/healthz`, { signal: AbortSignal.timeout(5_000) });
  t.is(health.status, 503);
  process.kill(pid, 'SIGCONT');
  continued = true;
  await ackedSince(load, 20, 'ACKs after Redis continues', 20_000);
  await load.stop();

  const [archive, mirror] = await settle(load, watches);
  assertClean(t, 'archive', archive!);
  assertClean(t, 'mirror (hand-off)', mirror!);
  t.is(await engine.stop(), 0);
});
