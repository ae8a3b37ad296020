// A file destination's writer thread (file-writer.ts says why it has one): takes a run of outputs,
// answers their outcomes. Runs as one bundled module (node-bundle.ts); exports nothing.
import { parentPort, workerData } from 'node:worker_threads';
import { fileWriter, type OnExists, type RunItem } from './file-writer.ts';

const { dir, onExists } = workerData as { dir: string; onExists: OnExists };
const write = fileWriter(dir, onExists);
parentPort!.on('message', async ({ seq, items }: { seq: number; items: RunItem[] }) => {
  parentPort!.postMessage({ seq, outcomes: await write(items) });
});
