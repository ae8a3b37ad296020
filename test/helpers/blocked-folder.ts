import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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
