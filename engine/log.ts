import { pino, type Logger, type LevelWithSilent } from 'pino';

// One JSON line per event on stdout (pino): machine-readable for log shippers, and `ferry start`
// output can be piped through any JSON pretty-printer when read by a person.
export const createLogger = (level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger => {
  const options = { level, base: { app: 'ferry' }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(options, destination) : pino(options);
};

export type { Logger };
