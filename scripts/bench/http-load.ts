// T4's HTTP load: Debian's wrk (C, one thread here: it must leave the cores to the servers it
// measures), POSTing one body with fixed headers over kept-alive HTTPS connections. A Lua script
// sets the request and prints the summary as JSON. wrk does not verify certificates.

import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readJsonLines, spawnChild } from './children.ts';

export interface HttpLoadResult {
  /** Responses with a 2xx status, per second. */
  okRate: number;
  ok: number;
  /** Non-2xx/3xx responses, and socket errors (connect, read, write, timeout). */
  bad: number;
  socketErrors: number;
  seconds: number;
  /** Latency in ms. */
  p50: number;
  p99: number;
}

/** Why wrk cannot run here, or undefined when it can. */
export const wrkMissing = (): string | undefined => {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch (error) {
    // wrk --version prints its usage and exits 1: that is wrk being there.
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'wrk is not installed (apt-get install wrk)' : undefined;
  }
};

const luaString = (text: string): string => JSON.stringify(text); // JSON string escapes are valid Lua

const script = (body: string, headers: Record<string, string>): string => `wrk.method = "POST"
wrk.body = ${luaString(body)}
${Object.entries(headers).map(([name, value]) => `wrk.headers[${luaString(name)}] = ${luaString(value)}`).join('\n')}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
`;

export const runWrk = async (options: { url: string; connections: number; seconds: number; body: string; headers: Record<string, string>; dir: string }): Promise<HttpLoadResult> => {
  const lua = path.join(options.dir, 'wrk-post.lua');
  await writeFile(lua, script(options.body, options.headers));
  const wrk = spawnChild('wrk', ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--timeout', '30s', '-s', lua, options.url]);
  let summary: Record<string, number> | undefined;
  const output = readJsonLines(wrk, (line) => (summary = line as Record<string, number>));
  const code = await wrk.closed;
  if (code !== 0 || !summary) throw new Error(`wrk exited with ${code}: ${output.stderr()}`);
  const s = summary as Record<'requests' | 'durationUs' | 'connect' | 'read' | 'write' | 'status' | 'timeout' | 'p50' | 'p99', number>;
  const seconds = s.durationUs / 1e6;
  const socketErrors = s.connect + s.read + s.write + s.timeout;
  const ok = s.requests - s.status; // wrk counts a request when its response is complete
  return { okRate: ok / seconds, ok, bad: s.status, socketErrors, seconds, p50: s.p50 / 1000, p99: s.p99 / 1000 };
};
