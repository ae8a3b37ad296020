import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

// What the engine logs, one event a line (pino). `json` (the default when stdout is not a terminal):
// machine-readable lines for log shippers and journald. `pretty`: time, level, message and fields
// for a person at a terminal (`ferry start` picks it when stdout is one; `--log json|pretty` decides).

export type LogFormat = 'json' | 'pretty';

export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/** pretty for a person at a terminal, json for everything else (pipes, files, service managers). */
export const defaultLogFormat = (): LogFormat => (process.stdout.isTTY ? 'pretty' : 'json');

export const createLogger = (
  level: LevelWithSilent = 'info',
  options: { format?: LogFormat; destination?: NodeJS.WritableStream } = {},
): Logger => {
  const { format = 'json', destination } = options;
  const settings = { level, base: { app: 'ferry' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'pretty') {
    // Synchronous, so the last lines before an exit are not lost; `app` is the same on every line.
    const stream = pretty({ destination: destination ?? 1, sync: true, colorize: destination === undefined && process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'app', singleLine: true });
    return pino(settings, stream);
  }
  return destination ? pino(settings, destination) : pino(settings);
};

export type { Logger };
