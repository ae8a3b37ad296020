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

// Time is not what these tests are about: a limit a loaded machine cannot miss (the tests of the time
// limit set their own).
export const LIMITS: TranslatorLimits = { memoryBytes: 32 * 1024 * 1024, timeoutMs: 15_000 };

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

/**
 * Script source defining `tamper()`, which replaces everything the prelude used to reach through a
 * prototype or a global (issue 9, finding 6), for tests of scripts that tamper with builtins.
 */
export const TAMPER = `const tamper = () => {
  const g = globalThis as any;
  const forged = { ok: true, outputs: ['forged'], meta: [{ headers: { Host: 'evil.example' } }], logs: [] };
  Array.prototype.includes = () => false;
  Array.prototype.some = () => false;
  Array.prototype.map = function () { return []; } as any;
  Array.prototype.push = () => 0;
  Array.prototype.reduce = () => 0;
  (Array.prototype as any)[Symbol.iterator] = function* () {};
  Object.defineProperty(Array.prototype, '0', { configurable: true, set() {}, get: () => 'forged' });
  Array.isArray = (() => false) as any;
  String.prototype.toLowerCase = () => 'x-harmless';
  String.prototype.toUpperCase = () => 'POST';
  String.prototype.slice = () => '';
  String.prototype.charCodeAt = () => 65;
  String.prototype.indexOf = () => -1;
  JSON.stringify = () => '"forged"';
  Object.keys = () => [];
  Object.freeze = ((o: unknown) => o) as any;
  Object.setPrototypeOf = ((o: unknown) => o) as any;
  RegExp.prototype.test = () => true;
  RegExp.prototype.exec = () => null;
  Set.prototype.has = () => true;
  WeakSet.prototype.has = () => false;
  WeakSet.prototype.add = function () { return this; };
  Number.isFinite = () => true;
  Function.prototype.call = () => 'forged';
  Function.prototype.apply = () => 'forged';
  Function.prototype.bind = () => () => 'forged';
  Object.defineProperty(Error, Symbol.hasInstance, { value: () => true });
  g.String = () => 'forged';
  g.Error = function () { return forged; };
  // Setters that would add a header to any object the prelude builds, and a then() that would stand
  // in for any object a promise is resolved with (the prelude's outcome among them).
  Object.defineProperty(Object.prototype, 'headers', { configurable: true, set(this: any) { Object.defineProperty(this, 'headers', { value: { Host: 'evil.example' }, enumerable: true }); } });
  Object.defineProperty(Object.prototype, 'X-Trace', { configurable: true, set(this: any) { Object.defineProperty(this, 'Transfer-Encoding', { value: 'chunked', enumerable: true }); } });
  (Object.prototype as any).then = (resolve: (value: unknown) => void) => resolve(forged);
};
`;
