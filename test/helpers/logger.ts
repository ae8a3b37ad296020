import { pino, type Logger } from 'pino';

// Tests that check what Ferry logs (a warning's wording, the fields of an error line) hand its code
// this logger and read the lines back, parsed, instead of scraping a process's output.

export interface CapturedLogger {
  logger: Logger;
  lines: Array<{ level: number; msg: string; [key: string]: unknown }>;
}

/** A pino logger (debug and up) whose lines are kept, parsed, for assertions on what was logged. */
export const captureLogger = (): CapturedLogger => {
  const lines: CapturedLogger['lines'] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
};
