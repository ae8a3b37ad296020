import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { blockedFolder } from '../helpers/blocked-folder.ts';
import { startEngineProcess } from '../helpers/engine-process.ts';
import { connectOutcome } from '../helpers/listener.ts';
import { DELIVERY_FILENAME, loadMessage, allDelivered, checkDeliveries, formatReport, startLoad, watchDeliveries } from '../helpers/load.ts';
import { channelsYaml, tempProject } from '../helpers/project.ts';
import { eventually, freePort } from '../helpers/temp.ts';

// Graceful shutdown (issue 5, point 6). SIGTERM while several senders are busy: the engine stops
// taking messages, finishes what it holds, exits 0 within engine.shutdownTimeout, and every message
// it acknowledged is delivered after a restart — in each sender's order, and a message delivered
// twice only under its own id. One destination is blocked (its folder is a link to a file) so that a
// backlog, and deliveries waiting to retry, are certainly in flight at the signal.

// The script marks its output, so a delivered file shows it went through the translator.
const SCRIPT = `export default function (msg: Message) {
  msg.set('MSH-5', 'ARCHIVE');
  return msg;
}
`;
const translated = (controlId: string): string => loadMessage(controlId).replace('|FERRY|LAB|', '|ARCHIVE|LAB|');

const SHUTDOWN_TIMEOUT_MS = 10_000;
const SENDERS = 4;

test('SIGTERM during a burst: exit 0, port closed, every acknowledged message delivered after restart, in order', async (t) => {
  const port = await freePort();
  const { dir, configFile } = await tempProject(
    t,
    channelsYaml({
      engine: `shutdownTimeout: ${SHUTDOWN_TIMEOUT_MS}ms`,
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
    destinations:
      - { name: archive, type: file, dir: ./out/archive, filename: "${DELIVERY_FILENAME}" }
      - name: held
        type: file
        dir: ./out/held
        filename: "${DELIVERY_FILENAME}"
        retry: { attempts: 0, backoff: fixed, delay: 200ms }
`,
    }),
    { 'channels/adt.ts': SCRIPT },
  );
  const heldFolder = await blockedFolder(join(dir, 'out'), 'held', 'held-real');
  const archiveWatch = await watchDeliveries(join(dir, 'out', 'archive'));
  const heldWatch = await watchDeliveries(join(dir, 'out', 'held-real'));
  t.teardown(() => [archiveWatch, heldWatch].forEach((w) => w.close()));

  const first = await startEngineProcess(t, configFile, dir);
  const load = startLoad({ port, connections: SENDERS, ackTimeoutMs: 15_000 });
  t.teardown(() => load.stop());
  await eventually(() => (load.acked().length >= 200 ? true : undefined), 30_000, '200 ACKs');

  const signalledAt = Date.now();
  const code = await first.stop();
  const shutdownMs = Date.now() - signalledAt;
  t.is(code, 0, first.output().slice(-3000));
  t.true(shutdownMs < SHUTDOWN_TIMEOUT_MS, `shutdown took ${shutdownMs} ms`);
  t.is(await connectOutcome(port), 'ECONNREFUSED');
  await load.stop();
  t.regex(first.output(), /"msg":"ferry stopped"/);
  // A clean stop logs no errors (e.g. "error while stopping", a worker failing on a closed connection).
  t.deepEqual(first.output().split('\n').filter((line) => /"level":(50|60)/.test(line)), []);
  // Senders were cut off by the closing port — never refused, never left waiting for a reply.
  const answered = load.attempts.filter((a) => !a.outcome.startsWith('none:'));
  t.deepEqual([...new Set(answered.map((a) => a.outcome))], ['AA'], 'no AE/AR during a clean shutdown');
  for (const a of load.attempts.filter((a) => a.outcome.startsWith('none:'))) {
    t.true(a.outcome === 'none:MLLP_CONNECTION_CLOSED' || a.outcome === 'none:MLLP_CONNECT_FAILED', a.outcome);
  }
  const archivedBeforeRestart = archiveWatch.names().length;

  // Unblock the held destination and start again: the backlog left in Redis is delivered.
  await heldFolder.unblock();
  const second = await startEngineProcess(t, configFile, dir);
  await eventually(
    () => (allDelivered(load, archiveWatch.names()) && allDelivered(load, heldWatch.names()) ? true : undefined),
    45_000,
    'every acknowledged message in both destinations',
  );
  const [archive, held] = [checkDeliveries(load, archiveWatch.names()), checkDeliveries(load, heldWatch.names())];
  t.log(`shutdown ${shutdownMs} ms; archived before the restart ${archivedBeforeRestart}`);
  for (const [label, report] of [['archive', archive], ['held', held]] as const) {
    t.log(`${label}: ${formatReport(report)}`);
    t.deepEqual(report.lost, [], label);
    t.deepEqual(report.outOfOrder, [], label);
    t.deepEqual(report.unexplained, [], label);
    t.is(report.delivered, report.acked, label);
  }
  // Each file is the translated message, whole.
  for (const name of archiveWatch.names().filter((_, i) => i % 25 === 0)) {
    const controlId = name.split('@')[0]!;
    t.is(await readFile(join(dir, 'out', 'archive', name), 'latin1'), translated(controlId));
    t.is(await readFile(join(dir, 'out', 'held-real', name), 'latin1'), translated(controlId));
  }

  // The message log agrees: nothing errored, and every received message is eventually sent.
  const counts = await eventually(async () => {
    const { body } = await second.api<Array<{ name: string; counts: Record<string, number> }>>('/api/channels');
    const c = body.find((channel) => channel.name === 'adt')!.counts;
    return c['sent'] === c['received'] ? c : undefined;
  });
  t.true(counts['received']! >= load.acked().length);
  t.is(counts['errored'], 0);
  t.is(await second.stop(), 0);
});
