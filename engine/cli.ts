import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { initCertificates, issueClientCertificate, renewServerCertificate } from './auth/certs.ts';
import { addHmacKey, addToken, listTokens, revokeToken } from './auth/tokens.ts';
import { mllpClient } from './clients/mllp.ts';
import { readUsersFile } from './auth/users.ts';
import type { FerryConfig } from './config/contract.ts';
import { loadConfig } from './config/load.ts';
import { sourceConnector, sourceConnectors } from './connectors.ts';
import { startEngine } from './engine.ts';
import { checkAdminExposure } from './http/auth.ts';
import { USER_USAGE, userCommand } from './user-command.ts';
import { FerryError, describeError, isFerryError } from './errors.ts';
import { readAck } from './hl7/ack.ts';
import { splitMessages } from './hl7/batch.ts';
import { LOG_FORMATS, createLogger, defaultLogFormat, type LogFormat } from './log.ts';
import { checkScripts } from './sandbox/check.ts';

// The `ferry` command's subcommands. With engine/bin/ferry.js (which loads it), the only place that
// reads argv, prints for people and handles signals.

const USAGE = `usage:
  ferry start [-c channels.yaml] [--log json|pretty]
                                          run the engine (logs: pretty on a terminal, else JSON lines)
  ferry check [-c channels.yaml]          validate the config and type-check the scripts
  ferry send <host:port> <file…> [--timeout 10s] [--raw] [--tls] [--ca file] [--cert file --key file]
                                          send HL7 files over MLLP (over TLS with --tls or a TLS file) and print each ACK
  ferry token add <name> --channel <ch>[,<ch>…] [-c channels.yaml]
                                          new bearer token for https channels ('*' = all); printed once
  ferry token add-hmac <key-id> --channel <ch>[,<ch>…] [-c channels.yaml]
                                          new HMAC key for signed requests (auth: hmac); secret printed once
  ferry token list [-c channels.yaml]     tokens and HMAC keys: channels, created, last used
  ferry token revoke <name> [-c channels.yaml]
                                          remove a token or HMAC key; running engines drop it within a second
  ferry certs init [--dir certs] [--host name,…] [--force]
                                          make a CA and a server certificate (default hosts localhost,127.0.0.1)
  ferry certs renew [--dir certs] [--host name,…]
                                          new server key and certificate from the same CA (same names unless --host)
  ferry certs issue <name> [--dir certs] [--force]
                                          make a client certificate signed by that CA
${USER_USAGE}`;

const usage = (message: string): FerryError => new FerryError('CLI_USAGE', `${message}\n${USAGE}`);

/**
 * One command's entries of USAGE (an entry is its `  ferry <command> …` line and the lines indented
 * under it); undefined for a word that is no command.
 */
const usageOf = (command: string): string | undefined => {
  const entries = USAGE.split(/\n(?= {2}ferry )/).slice(1).filter((entry) => entry.startsWith(`  ferry ${command} `));
  return entries.length > 0 ? ['usage:', ...entries].join('\n') : undefined;
};

/** `-h` or `--help` among the options (before any `--`, after which arguments are names). */
const asksForHelp = (args: string[]): boolean => {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '-h' || arg === '--help');
};

/** A file named on the command line, or CLI_FILE_UNREADABLE naming it (`what` says which option it came from). */
const readNamedFile = async (file: string, what = 'file'): Promise<Buffer> => {
  try {
    return await readFile(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why: Record<string, string> = { EISDIR: 'it is a directory', EACCES: 'permission denied', EPERM: 'permission denied' };
    const message = code === 'ENOENT' ? `${what} ${file} does not exist` : `cannot read ${what} ${file}: ${(code && why[code]) ?? code ?? (cause as Error).message}`;
    throw new FerryError('CLI_FILE_UNREADABLE', message, { cause, details: { file } });
  }
};

/** Node's own errors from the file system, the network or DNS (ENOENT, EACCES, ECONNREFUSED…): the machine's state, not a bug. */
const isSystemError = (error: unknown): boolean => error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === 'string';

const isLogFormat = (value: string): value is LogFormat => (LOG_FORMATS as readonly string[]).includes(value);

const seconds = (value: string): number => {
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value);
  if (!match) throw usage(`--timeout takes a duration such as 10s or 500ms (got "${value}")`);
  return Number(match[1]) * (match[2] === 'ms' ? 1 : 1000);
};

const start = async (args: string[]): Promise<number> => {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c', default: 'channels.yaml' }, log: { type: 'string' } } });
  const format = values.log ?? defaultLogFormat();
  if (!isLogFormat(format)) throw usage(`--log takes ${LOG_FORMATS.join(' or ')} (got "${format}")`);
  const config = await loadConfig(values.config!);
  const logger = createLogger(config.engine.logLevel, { format });
  const engine = await startEngine(config, logger);
  for (const channel of engine.channels.values()) {
    if (channel.state() === 'stopped') {
      console.error(`ferry: channel ${channel.name} stopped through the admin API; start it there (POST /api/channels/${channel.name}/start)`);
      continue;
    }
    const { source } = channel.config;
    const activity = sourceConnector(source).activity(source, { port: channel.sourcePort(), httpsUrl: engine.https?.url });
    console.error(`ferry: channel ${channel.name} ${activity}`);
  }
  if (config.engine.websocket && engine.https) {
    console.error(`ferry: WebSocket push on ${engine.https.url.replace(/^http/, 'ws')}${config.engine.websocket.path}`);
  }
  console.error(`ferry: admin API on ${engine.admin.url} — Ctrl-C or SIGTERM to stop`);

  await new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        console.error(`ferry: ${signal} again, exiting without draining`);
        process.exit(1);
      }
      signalled = true;
      logger.info({ signal }, 'stopping: intake closed, draining in-flight work');
      const timer = setTimeout(() => {
        logger.error('shutdown timed out; exiting (queued work stays in Redis)');
        process.exit(1);
      }, config.engine.shutdownTimeoutMs).unref();
      void engine.stop().finally(() => {
        clearTimeout(timer);
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return 0;
};

const check = async (args: string[]): Promise<number> => {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c', default: 'channels.yaml' } } });
  const config = await loadConfig(values.config!);
  // What `ferry start` refuses before it starts anything (the users file is read the same way).
  checkAdminExposure(config, (await readUsersFile(config.engine.users)).length);
  const problems = await checkScripts(config);
  for (const p of problems) {
    const file = relative(process.cwd(), p.file) || p.file;
    console.error(p.line > 0 ? `${file}:${p.line}:${p.column}: ${p.message}` : `${file || 'ferry check'}: ${p.message}`);
  }
  const scripts = config.channels.filter((c) => c.script).length;
  if (problems.length > 0) {
    console.error(`ferry check: ${problems.length} problem(s) in ${scripts} script(s)`);
    return 1;
  }
  console.log(`ferry check: ${config.file} is valid: ${config.channels.length} channel(s), ${scripts} script(s) type-check`);
  return 0;
};

const send = async (args: string[]): Promise<number> => {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      timeout: { type: 'string', default: '10s' },
      raw: { type: 'boolean', default: false },
      tls: { type: 'boolean', default: false },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
    },
  });
  const [target, ...files] = positionals;
  const match = target ? /^(.+):(\d+)$/.exec(target) : null;
  if (!match) throw usage('ferry send needs <host:port>');
  if (Number(match[2]) < 1 || Number(match[2]) > 65535) throw usage(`ferry send needs a port from 1 to 65535 (got ${match[2]})`);
  if (files.length === 0) throw usage('ferry send needs at least one file');
  if ((values.cert === undefined) !== (values.key === undefined)) throw usage('ferry send needs --cert and --key together');
  const ackTimeoutMs = seconds(values.timeout!);
  // Any TLS file implies TLS; --tls alone verifies the receiver against the system CAs.
  const secure = values.tls || values.ca !== undefined || values.cert !== undefined;
  const pem = async (option: string, file: string | undefined): Promise<Buffer | undefined> => (file === undefined ? undefined : readNamedFile(file, `${option} file`));
  const tls = secure ? { ca: await pem('--ca', values.ca), cert: await pem('--cert', values.cert), key: await pem('--key', values.key) } : undefined;
  // Every file is read before anything is sent: a mistyped name stops the command with nothing sent.
  const contents: Buffer[] = [];
  for (const file of files) contents.push(await readNamedFile(file));
  const client = mllpClient({ host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(match[2]), ackTimeoutMs, ...(tls && { tls }) });
  let failures = 0;
  try {
    for (const [position, file] of files.entries()) {
      // Files edited by hand usually end segments with LF; HL7 wants CR (--raw sends bytes as they are).
      const bytes = contents[position]!;
      const messages = values.raw ? [bytes] : splitMessages(bytes);
      for (const [index, message] of messages.entries()) {
        const label = messages.length > 1 ? `${file}#${index + 1}` : file;
        try {
          const ack = readAck((await client.send(message)).toString('latin1'));
          const ok = ack.code === 'AA' || ack.code === 'CA';
          if (!ok) failures++;
          const detail = [...new Set([ack.text, ack.errorText].filter(Boolean))].join(' — ');
          console.log(`${label}: ${ack.code} for ${ack.controlId || '(no control id)'}${detail ? ` (${detail})` : ''}`);
        } catch (error) {
          failures++;
          console.log(`${label}: no ACK: ${describeError(error)}`);
        }
      }
    }
  } finally {
    await client.close();
  }
  return failures === 0 ? 0 : 1;
};

const listOption = (values: string[] | undefined): string[] =>
  (values ?? []).flatMap((value) => value.split(',')).map((item) => item.trim()).filter(Boolean);

/** "a", "a and b", "a, b and c". */
const inWords = (items: string[]): string => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`);

/**
 * `ferry token add|add-hmac … --channel` names that likely grant nothing: no such channel, or a channel
 * whose source does not check this kind of credential (only sources whose connector has `auth` do,
 * the https and pusher sources: auth: token for tokens, auth: hmac for HMAC keys). With
 * engine.websocket a bearer token's names are also WebSocket topic grants (name and name.*), which
 * need no channel: that is only a note. '*' is every channel, present and future, so it is never
 * warned about.
 */
const channelWarnings = (config: FerryConfig, action: 'add' | 'add-hmac', channels: string[]): string[] => {
  const kind = action === 'add' ? 'token' : 'hmac';
  const lines: string[] = [];
  for (const name of channels) {
    if (name === '*') continue;
    const channel = config.channels.find((c) => c.name === name);
    const auth = channel && sourceConnector(channel.source).auth?.(channel.source);
    if (auth === kind) continue;
    // WebSocket subscribers authenticate with bearer tokens only (TokenTable.verify), never HMAC keys.
    const topics = kind === 'token' && config.engine.websocket ? ` (as a WebSocket grant it covers topics ${name} and ${name}.*)` : '';
    const level = topics ? 'note' : 'warning';
    if (!channel) {
      lines.push(`ferry: ${level}: no channel named "${name}" in ${config.file}${topics}`);
      continue;
    }
    const { type } = channel.source;
    const why = auth === undefined ? `its source has type: ${type}` : `its ${type} source has auth: ${auth}`;
    const what = kind === 'token' ? 'tokens' : 'HMAC keys';
    const checking = inWords(sourceConnectors.filter((c) => c.auth).map((c) => c.type));
    lines.push(`ferry: ${level}: channel "${name}" in ${config.file} checks no ${what}: ${why}${topics || ` (only ${checking} sources with auth: ${kind} do)`}`);
  }
  return lines;
};

const token = async (args: string[]): Promise<number> => {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c', default: 'channels.yaml' }, channel: { type: 'string', multiple: true } },
  });
  const adds = action === 'add' || action === 'add-hmac';
  if (action !== 'list' && action !== 'revoke' && !adds) throw usage(`ferry token needs add, add-hmac, list or revoke${action ? ` (got "${action}")` : ''}`);
  if (positionals.length !== (action === 'list' ? 0 : 1)) throw usage(action === 'list' ? 'ferry token list takes no name' : `ferry token ${action} needs one <name>`);
  if (!adds && values.channel) throw usage(`ferry token ${action} takes no --channel`);
  const config = await loadConfig(values.config!);
  const file = config.engine.tokens;
  const shown = relative(process.cwd(), file) || file;
  const name = positionals[0]!;

  if (adds) {
    const channels = listOption(values.channel);
    if (channels.length === 0) throw usage(`ferry token ${action} needs --channel <channel>[,<channel>…] (or --channel '*' for every channel)`);
    for (const line of channelWarnings(config, action, channels)) console.error(line);
    const secret = await (action === 'add' ? addToken : addHmacKey)(file, name, channels);
    console.log(secret);
    const what = action === 'add' ? `token "${name}"` : `HMAC key "${name}"`;
    const kept = action === 'add' ? 'only its SHA-256 hash is stored' : 'give it to the sender now';
    console.error(`ferry: ${what} for ${channels.join(', ')} added to ${shown}; this is the only time it is shown (${kept})`);
    return 0;
  }
  if (action === 'revoke') {
    const revoked = await revokeToken(file, name);
    console.log(`ferry: revoked ${revoked.kind === 'token' ? 'token' : 'HMAC key'} "${name}" (${revoked.channels.join(', ')}) in ${shown}; running engines refuse it from their next reload, within a second`);
    return 0;
  }
  const tokens = await listTokens(file);
  if (tokens.length === 0) {
    console.error(`ferry: no tokens in ${shown} (add one with: ferry token add <name> --channel <channel>)`);
    return 0;
  }
  const time = (iso: string | undefined): string => (iso ? `${iso.slice(0, 19).replace('T', ' ')}Z` : 'never');
  const rows = [['NAME', 'KIND', 'CHANNELS', 'CREATED', 'LAST USED'], ...tokens.map((t) => [t.name, t.kind, t.channels.join(','), time(t.createdAt), time(t.lastUsedAt)])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  return 0;
};

const certs = async (args: string[]): Promise<number> => {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { dir: { type: 'string', default: 'certs' }, host: { type: 'string', multiple: true }, force: { type: 'boolean', default: false } },
  });
  const dir = values.dir!;
  const shown = (file: string): string => relative(process.cwd(), file) || file;
  const until = (date: Date): string => date.toISOString().slice(0, 10);
  if (action === 'init') {
    if (positionals.length > 0) throw usage('ferry certs init takes no name (use --host for the server names)');
    const hosts = listOption(values.host);
    const made = await initCertificates({ dir, ...(hosts.length > 0 ? { hosts } : {}), force: values.force! });
    console.log(`created ${shown(made.ca.cert)} and ${shown(made.ca.key)}: CA "${made.ca.subject}", valid until ${until(made.ca.notAfter)}`);
    console.log(`created ${shown(made.server.cert)} and ${shown(made.server.key)}: server certificate for ${made.server.hosts.join(', ')}, valid until ${until(made.server.notAfter)}`);
    console.log(`receiver: engine.https: { cert: ${shown(made.server.cert)}, key: ${shown(made.server.key)}, ca: ${shown(made.ca.cert)} }; senders trust ${shown(made.ca.cert)} (ca:)`);
    return 0;
  }
  if (action === 'issue') {
    if (positionals.length !== 1) throw usage('ferry certs issue needs one <name>');
    if (values.host) throw usage('ferry certs issue takes no --host');
    const made = await issueClientCertificate({ dir, name: positionals[0]!, force: values.force! });
    console.log(`created ${shown(made.cert)} and ${shown(made.key)}: client certificate CN=${positionals[0]}, valid until ${until(made.notAfter)}`);
    console.log(`sender: destination cert: ${shown(made.cert)}, key: ${shown(made.key)}`);
    return 0;
  }
  if (action === 'renew') {
    if (positionals.length > 0) throw usage('ferry certs renew takes no name (use --host for the server names)');
    if (values.force) throw usage('ferry certs renew takes no --force (it always replaces the server certificate)');
    const hosts = listOption(values.host);
    const made = await renewServerCertificate({ dir, ...(hosts.length > 0 ? { hosts } : {}) });
    const replaced = made.replacedNotAfter ? `replaced the one valid until ${until(made.replacedNotAfter)}` : 'there was none';
    console.log(`created ${shown(made.cert)} and ${shown(made.key)}: server certificate for ${made.hosts.join(', ')}, valid until ${until(made.notAfter)}; ${replaced}`);
    console.log('signed by the same CA: senders need no change; a running engine loads the new pair within seconds');
    return 0;
  }
  throw usage(`ferry certs needs init, renew or issue${action ? ` (got "${action}")` : ''}`);
};

export const main = async (argv: string[]): Promise<number> => {
  const [command, ...args] = argv;
  try {
    const help = command !== undefined && asksForHelp(args) ? usageOf(command) : undefined;
    if (help) {
      console.log(help);
      return 0;
    }
    switch (command) {
      case 'start':
        return await start(args);
      case 'check':
        return await check(args);
      case 'send':
        return await send(args);
      case 'token':
        return await token(args);
      case 'user':
        return await userCommand(args, { stdin: process.stdin, usage });
      case 'certs':
        return await certs(args);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw usage(`unknown command "${command}"`);
    }
  } catch (thrown) {
    // parseArgs reports unknown or malformed options as plain errors: they are usage mistakes.
    const code = (thrown as NodeJS.ErrnoException).code ?? '';
    const error = code.startsWith('ERR_PARSE_ARGS_') ? usage((thrown as Error).message) : thrown;
    console.error(isFerryError(error) ? `ferry: ${error.code}: ${error.message}` : `ferry: ${describeError(error)}`);
    // A stack trace only for what may be a bug: not for Ferry's own errors, nor for the system's
    // (a folder that does not exist, no permission), whose message already says all there is.
    if (!isFerryError(error) && !isSystemError(error) && error instanceof Error && error.stack) console.error(error.stack);
    return isFerryError(error) && error.code === 'CLI_USAGE' ? 2 : 1;
  }
};
