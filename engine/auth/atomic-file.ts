import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

// Writes secrets (token tables, private keys) so that no reader ever sees half a file and the file
// is never readable by others, not even for a moment: the temp file is created with `mode` (and
// chmod'ed, since a umask can only remove bits), fsync'ed, renamed over the target, and the folder
// fsync'ed so the rename itself survives a power loss (a lost revocation would resurrect a token).

export const writeFileAtomic = async (file: string, data: string | Uint8Array, mode: number): Promise<void> => {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
};
