import type { ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { createTranslator, type Translator, type TranslatorLimits } from '../../engine/sandbox/translator.ts';
import { tempDir } from '../helpers/temp.ts';

export const ADT =
  'MSH|^~\\&|REG|HOSP|ARCHIVE|HOSP|20240101120000||ADT^A01|MSG0001|P|2.5\r' +
  'PID|1||12345^^^HOSP^MR~999^^^SSA^SS||doe^john^q||19800101|M\r';

export interface Channels {
  /** The temp folder holding `channels/`. */
  root: string;
  dir: string;
  /** Absolute path of `channels/<name>`. */
  file(name: string): string;
  /** Writes `channels/<name>` (folders included) and returns its absolute path. */
  write(name: string, code: string): Promise<string>;
}

/** A temp `channels/` folder with the given files, removed after the test. */
export const channelsFolder = async (t: ExecutionContext, files: Record<string, string> = {}): Promise<Channels> => {
  const root = await tempDir(t, 'ferry-sandbox-');
  const dir = path.join(root, 'channels');
  const channels: Channels = {
    root,
    dir,
    file: (name) => path.join(dir, name),
    async write(name, code) {
      const file = path.join(dir, name);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, code);
      return file;
    },
  };
  await mkdir(dir, { recursive: true });
  for (const [name, code] of Object.entries(files)) await channels.write(name, code);
  return channels;
};

export const LIMITS: TranslatorLimits = { memoryBytes: 32 * 1024 * 1024, timeoutMs: 1000 };

/** A translator for `scriptPath`, ready (first compile tried) and closed after the test. */
export const translatorFor = async (
  t: ExecutionContext,
  scriptPath: string,
  options: { limits?: TranslatorLimits; logger?: Logger; channel?: string } = {},
): Promise<Translator> => {
  const translator = createTranslator({
    channel: options.channel ?? 'test',
    scriptPath,
    limits: options.limits ?? LIMITS,
    logger: options.logger ?? pino({ level: 'silent' }),
    debounceMs: 20,
  });
  t.teardown(() => translator.close());
  await translator.ready();
  return translator;
};

/** Runs one script source on one message. */
export const runScript = async (t: ExecutionContext, code: string, text = ADT) => {
  const channels = await channelsFolder(t, { 'script.ts': code });
  const translator = await translatorFor(t, channels.file('script.ts'));
  return translator.run({ id: 'm1', text });
};
