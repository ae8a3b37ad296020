// What a line of redis-server's output is worth in Ferry's log. redis writes
// `<pid>:<role> <date> <mark> <text>`, the mark being its level (`.` debug, `-` verbose, `*` notice,
// `#` warning), but it also marks routine start-up and shutdown lines `#` so that they show at any
// log level: on every start a person would see its banner as warnings. Those, and everything below
// `#`, are debug; a `#` line that is not routine (a slow or failed AOF fsync, a failed
// fork, a port it cannot bind) is a warning, and so is a line outside that format (blank ones
// aside), which is what redis prints as it dies of a bad argument (`*** FATAL CONFIG FILE ERROR ***`).

export interface RedisOutputLine {
  level: 'debug' | 'warn';
  /** The redis-server process that wrote it (the AOF rewrite child writes too); absent when the line does not say. */
  redisPid?: number;
  /** The line without redis's pid, role and timestamp (the log line has its own time). */
  text: string;
}

const FORMATTED = /^(\d+):(?:[A-Z] \d{1,2} [A-Za-z]{3} \d{4} [\d:.]+ ([.*#-]) |signal-handler \(\d+\) )(.*)$/;

/** `#` lines redis 6 and 7 write on every healthy start and stop. */
const ROUTINE = [
  /^oO0OoO0OoO0Oo Redis is starting/,
  /^Redis version=.*just started$/,
  /^Configuration loaded$/,
  // Ferry passes its settings as arguments on purpose.
  /^Warning: no config file specified/,
  /^Server initialized$/,
  // Host tuning advice printed on every start of a machine without vm.overcommit_memory = 1: a fork
  // that then fails (AOF rewrite) is reported by redis as its own warning when it happens.
  /^WARNING Memory overcommit must be enabled!/,
  /^User requested shutdown/,
  /^Redis is now ready to exit, bye bye/,
];

export const classifyRedisOutput = (line: string): RedisOutputLine => {
  const match = FORMATTED.exec(line);
  if (!match) return { level: line.trim() ? 'warn' : 'debug', text: line };
  const text = match[3]!;
  const warning = match[2] === '#' && !ROUTINE.some((routine) => routine.test(text));
  return { level: warning ? 'warn' : 'debug', redisPid: Number(match[1]), text };
};
