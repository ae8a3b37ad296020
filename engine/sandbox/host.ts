// The sandbox host: a child process that runs one channel's script in isolated-vm (isolate.ts) for
// the engine, which starts it through process-sandbox.ts. isolated-vm contains what a script does in
// its isolate but not every way V8 can fail: a Map or an array grown past the heap limit aborts the
// whole process instead of throwing, and so would a crash in the native addon. Here such a failure
// ends this process and the message in flight, not the engine.
//
// It runs as one bundled module on plain node (transpile.ts hostCode), talks only over the IPC
// channel (host-protocol.ts), one request at a time, and exits when the engine goes away. It exports
// nothing: importing this file runs it.
import { FerryError, isFerryError } from '../errors.ts';
import { OVER_MEMORY, type HostError, type HostReply, type HostRequest } from './host-protocol.ts';
import { createSandbox, type Sandbox } from './isolate.ts';
import { scriptLocator } from './source-map.ts';

/**
 * Fault injection for tests: a message whose text contains this string aborts the host, as a
 * crash of V8 or of the addon would. Unset (always, outside tests), nothing changes.
 */
const CRASH_MARKER_ENV = 'FERRY_TEST_SANDBOX_CRASH_MARKER';

const MEMORY_CHECK_MS = 50;
const MB = 1024 * 1024;

/**
 * The isolate's memory limit covers its heap and ArrayBuffers, not what V8 allocates for it outside
 * the heap: ICU objects behind Intl, for one, grow a process by gigabytes within the time limit.
 * The whole process is watched instead, and ends itself past its cap, before it starves the machine.
 */
const capMemory = (capBytes: number): void => {
  setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss <= capBytes) return;
    // Synchronous on a pipe: the engine reads this line after the exit.
    process.stderr.write(`${OVER_MEMORY}: ${Math.round(rss / MB)} MB in use, more than the ${Math.round(capBytes / MB)} MB cap\n`);
    process.exit(1);
  }, MEMORY_CHECK_MS).unref();
};

const toHostError = (error: unknown): HostError => {
  if (isFerryError(error)) {
    return { code: error.code, message: error.message, permanent: error.permanent, ...(error.details ? { details: error.details } : {}) };
  }
  return { code: 'SANDBOX_FAILED', message: error instanceof Error ? error.message : String(error), permanent: false };
};

const main = (): void => {
  const send = process.send?.bind(process);
  if (!send) throw new Error('engine/sandbox/host.ts runs as a child process of the engine, started by process-sandbox.ts');
  const crashMarker = process.env[CRASH_MARKER_ENV] || undefined;
  let sandbox: Sandbox | undefined;

  const handle = async (request: HostRequest): Promise<Pick<HostReply & { ok: true }, 'result' | 'results'>> => {
    if (request.op === 'init') {
      sandbox = createSandbox({ channel: request.channel, limits: request.limits, prelude: request.prelude });
      capMemory(request.memoryCapBytes);
      return {};
    }
    if (!sandbox) throw new FerryError('SANDBOX_FAILED', `the sandbox host got "${request.op}" before "init"`);
    if (request.op === 'load') {
      const { script } = request;
      await sandbox.load({ ...script, inputs: [], locate: scriptLocator(script.file, script.map) });
      return {};
    }
    const inputs = request.op === 'run' ? [request.input] : request.inputs;
    if (crashMarker !== undefined && inputs.some((input) => input.text.includes(crashMarker))) process.abort();
    if (request.op === 'run') return { result: await sandbox.run(request.input) };
    const results = await sandbox.runMany(request.inputs);
    return { results: results.map((result) => (isFerryError(result) ? { ok: false, error: toHostError(result) } : { ok: true, result })) };
  };

  const reply = (message: HostReply): void => {
    try {
      send(message);
    } catch (error) {
      // Details that cannot be cloned must not leave the engine waiting for its deadline.
      if (message.ok) throw error;
      send({ seq: message.seq, ok: false, error: { ...message.error, details: undefined } });
    }
  };

  process.on('message', (request: HostRequest) => {
    handle(request).then(
      (answer) => reply({ seq: request.seq, ok: true, ...answer }),
      (error: unknown) => reply({ seq: request.seq, ok: false, error: toHostError(error) }),
    );
  });
  // The engine (the parent) is gone, by close() or by a crash of its own: nobody waits for answers.
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C signals the whole process group; the engine decides when its host stops, by disconnecting.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
};

main();
