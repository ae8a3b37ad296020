// The bench's side of the MLLP processes: the load generator (load-mllp.ts) and the echo listener
// (echo-server.ts), each started as a process of its own.

import { cpuMs, rssBytes } from './proc-stats.ts';
import { readJsonLines, spawnBenchProgram } from './children.ts';

export interface LoadOptions {
  ports: number[];
  connections: number;
  seconds?: number;
  count?: number;
  /** Open loop: messages per second offered in all (see load-mllp.ts). */
  rate?: number;
  /** Control-id prefix: the names of the files Ferry writes. */
  prefix: string;
  /** Called when the load starts sending (its connections are up). */
  onSending?: () => void | Promise<void>;
}

export interface LoadResult {
  /** Tries: a message answered AE or not at all is sent again. */
  sent: number;
  acked: number;
  notAa: number;
  failures: number;
  firstProblem?: string;
  warmUps: number;
  elapsedMs: number;
  ackRate: number;
  /** ACK latency in ms, measured by the sender from its write. */
  p50: number;
  p99: number;
  max: number;
  /** Open loop: sends that went out late because the previous ACK had not come, and the p99 of the lag behind schedule (ms). */
  late: number;
  lagP99: number;
  /** CPU the load process itself used. */
  cpuMs: number;
}

export const runLoad = async (options: LoadOptions): Promise<LoadResult> => {
  const args = ['--ports', options.ports.join(','), '--connections', String(options.connections), '--prefix', options.prefix];
  if (options.seconds !== undefined) args.push('--seconds', String(options.seconds));
  if (options.count !== undefined) args.push('--count', String(options.count));
  if (options.rate !== undefined) args.push('--rate', String(options.rate));
  const load = spawnBenchProgram('load-mllp', args);
  let result: LoadResult | undefined;
  let sending: Promise<void> | undefined;
  const output = readJsonLines(load, (line) => {
    if (line['event'] === 'sending') sending = Promise.resolve(options.onSending?.());
    else if (line['event'] === 'done') result = line as unknown as LoadResult;
  });
  const code = await load.closed;
  await sending;
  if (code !== 0 || !result) throw new Error(`the MLLP load process exited with ${code}: ${output.stderr().trim()}`);
  if (result.failures > 0 || result.notAa > 0) {
    console.log(`  load: ${result.failures} tries got no answer and ${result.notAa} an answer other than AA, each sent again after 100 ms; first: ${result.firstProblem}`);
  }
  return result;
};

export interface Echo {
  port: number;
  cpuMs(): Promise<number>;
  rssBytes(): Promise<number>;
  stop(): Promise<void>;
}

export const startEcho = async (): Promise<Echo> => {
  const echo = spawnBenchProgram('echo-server', []);
  const port = await new Promise<number>((resolve, reject) => {
    const output = readJsonLines(echo, (line) => resolve(Number(line['port'])));
    void echo.closed.then((code) => reject(new Error(`the echo listener exited with ${code}: ${output.stderr()}`)));
  });
  return { port, cpuMs: () => cpuMs(echo.pid), rssBytes: () => rssBytes(echo.pid), stop: () => echo.kill('SIGTERM') };
};
