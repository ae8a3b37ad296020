import type { ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FerryConfig } from '../../engine/config/contract.ts';
import { parseConfig } from '../../engine/config/load.ts';
import { FerryError } from '../../engine/errors.ts';
import { tempDir } from './temp.ts';

// The config tests parse channels.yaml text as if it sat in a project folder, so that relative
// paths (certificates, keys) resolve and are checked against real files.

/** A temp project folder holding the files configs may name; the loader checks they exist, not their content. */
export const configProject = async (t: ExecutionContext, files: readonly string[]): Promise<string> => {
  const dir = await tempDir(t);
  for (const file of files) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), 'pem');
  }
  return dir;
};

export const parseConfigIn = (dir: string, text: string): FerryConfig => parseConfig(text, join(dir, 'channels.yaml'), {});

/** The error code and message a rejected config reports; throws if the config is accepted. */
export const configProblems = (dir: string, text: string): string => {
  try {
    parseConfigIn(dir, text);
  } catch (error) {
    if (error instanceof FerryError) return `${error.code}\n${error.message}`;
    throw error;
  }
  throw new Error('expected the config to be rejected');
};
