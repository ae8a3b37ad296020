import type { ExecutionContext } from 'ava';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DELIVERY_FILENAME } from './load.ts';
import { channelsYaml, tempProject, type TempProject } from './project.ts';
import { freePort } from './temp.ts';

// A file destination that cannot deliver, for as long as a test wants: its folder is a symlink to a
// file, so every write fails and retries, and its backlog stays queued in Redis — through a restart,
// a kill or a SIGTERM — until the test swaps the link for one to a real folder.

export interface BlockedFolder {
  /** Points the link, atomically, at the real folder: the backlog is delivered there. */
  unblock(): Promise<void>;
}

/** Makes `<parent>/<name>` a link to a file; deliveries land in `<parent>/<real>` (made now, so it can be watched from the start) once unblocked. */
export const blockedFolder = async (parent: string, name: string, real: string): Promise<BlockedFolder> => {
  await mkdir(join(parent, real), { recursive: true });
  await writeFile(join(parent, 'blocker'), 'a file where the folder should be');
  await symlink('blocker', join(parent, name));
  return {
    async unblock() {
      await symlink(real, join(parent, `${name}.next`));
      await rename(join(parent, `${name}.next`), join(parent, name));
    },
  };
};

export interface BlockedProject extends TempProject, BlockedFolder {
  /** The MLLP port of its channel `adt`. */
  port: number;
}

/**
 * A project with one channel, `adt` (MLLP in, on a free port), whose only destination, `archive`,
 * is a blocked folder retried every 200 ms until unblock(); deliveries then land in out/real, named
 * DELIVERY_FILENAME. `channelExtra` adds lines to the channel (such as `    maxQueued: 50`); `files`
 * adds files to the project (such as `channels/adt.ts`).
 */
export const blockedProject = async (
  t: Pick<ExecutionContext, 'teardown'>,
  { channelExtra = '', files = {} }: { channelExtra?: string; files?: Record<string, string> } = {},
): Promise<BlockedProject> => {
  const port = await freePort();
  const project = await tempProject(
    t,
    channelsYaml({
      channels: `  - name: adt
    source: { type: mllp, host: 127.0.0.1, port: ${port} }
${channelExtra ? `${channelExtra}\n` : ''}    destinations:
      - name: archive
        type: file
        dir: ./out/archive
        filename: "${DELIVERY_FILENAME}"
        retry: { attempts: 0, backoff: fixed, delay: 200ms }
`,
    }),
    files,
  );
  const archive = await blockedFolder(join(project.dir, 'out'), 'archive', 'real');
  return { ...project, ...archive, port };
};
