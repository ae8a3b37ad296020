import { cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeProject } from './project.ts';

// The UI tests run the project the repository ships as its example (channels.yaml and channels/), so
// the screens they check are the ones a new user sees first. Its fixed ports would clash with other
// tests, so the copy listens where the test says.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Copies the example into `dir` with its MLLP listener on `mllpPort` and its HTTPS one on any free port; returns channels.yaml's path. */
export const writeExampleProject = async (dir: string, mllpPort: number): Promise<string> => {
  await cp(join(ROOT, 'channels'), join(dir, 'channels'), { recursive: true });
  const original = await readFile(join(ROOT, 'channels.yaml'), 'utf8');
  const config = original.replace('port: 6661', `port: ${mllpPort}`).replace('port: 8470', 'port: 0');
  if (!config.includes(`port: ${mllpPort}`) || !config.includes('port: 0')) throw new Error('channels.yaml no longer has the ports the UI tests rewrite');
  return writeProject(dir, config);
};
