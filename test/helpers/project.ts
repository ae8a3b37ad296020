import type { ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { tempDir } from './temp.ts';

// A project folder as a user keeps one: channels.yaml and the files it names (channel scripts,
// certificates, inbox files). Test engines all keep their data in ./data and put the admin API on a
// free loopback port, so a test spells out only its channels and any engine settings of its own.

export interface ChannelsYaml {
  /** The `channels:` list, as YAML text indented by two spaces (`  - name: adt`). */
  channels: string;
  /** More engine settings, one a line, without indentation (`commitTimeout: 1s`). */
  engine?: string;
  /** The engine's data folder; default ./data (two engines run from one folder need one each). */
  data?: string;
  /** The engine.admin value; default { host: 127.0.0.1, port: 0 }. */
  admin?: string;
}

/** channels.yaml text: the shared engine block (data in ./data, admin API on 127.0.0.1 port 0 unless `admin` says otherwise), `engine`, then `channels`. */
export const channelsYaml = ({ channels, engine = '', data = './data', admin = '{ host: 127.0.0.1, port: 0 }' }: ChannelsYaml): string => {
  const settings = engine
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => `  ${line}\n`)
    .join('');
  return `engine:\n  data: ${data}\n  admin: ${admin}\n${settings}channels:\n${channels}`;
};

/** Writes `files` (paths relative to `dir`, folders made as needed) and channels.yaml holding `config`; returns channels.yaml's path. */
export const writeProject = async (dir: string, config: string, files: Record<string, string> = {}): Promise<string> => {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  const configFile = join(dir, 'channels.yaml');
  await writeFile(configFile, config);
  return configFile;
};

export interface TempProject {
  dir: string;
  configFile: string;
}

/** writeProject in a fresh temp folder that is removed when the test ends. */
export const tempProject = async (t: Pick<ExecutionContext, 'teardown'>, config: string, files: Record<string, string> = {}): Promise<TempProject> => {
  const dir = await tempDir(t);
  return { dir, configFile: await writeProject(dir, config, files) };
};
