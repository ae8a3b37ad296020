// What the schema cannot say. Runs even when the schema failed, so that all problems come out
// together; hence it reads the YAML as written, defensively, and skips what the schema reports.
// Each source and destination checks its own keys (its connector's `check`) and says what it
// claims (`claims`); what spans channels is checked here and in claims.ts, what spans the engine
// section in engine-checks.ts.

import path from 'node:path';
import type { ConfigCheck, SourceConnector } from '../connector.ts';
import { findDestination, findSource } from '../connectors.ts';
import { checkFolders, checkHandOffs, checkHttpsPaths, checkPorts, type Claimed } from './claims.ts';
import type { KeyPath } from './contract.ts';
import { checkEngine } from './engine-checks.ts';
import { engineDefaults } from './engine-schema.ts';
import { lineOf, report, type ConfigSource } from './report.ts';
import { minScriptMemoryBytes } from './schema.ts';
import { describeValue, entries, entry, isEntry, isFile, isSize, sizeBytes, type Entry } from './units.ts';

export function checkConsistency(source: ConfigSource, data: unknown, dir: string): void {
  const fail = (at: KeyPath, message: string) => report(source, 'CONFIG_INVALID', at, message);
  const checkFile = (value: unknown, at: KeyPath): void => {
    if (typeof value === 'string' && value !== '' && !isFile(path.resolve(dir, value))) fail(at, `file not found: ${path.resolve(dir, value)}`);
  };
  const root = entry(data);
  const engine = entry(root['engine']);
  const channels = entries(root['channels']);

  const byName = new Map<string, Entry>();
  const firstAt = new Map<string, number>();
  for (const [i, channel] of channels) {
    const name = channel['name'];
    if (typeof name !== 'string') continue;
    const first = firstAt.get(name);
    if (first !== undefined) fail(['channels', i, 'name'], `duplicate channel name "${name}" (first at line ${lineOf(source, ['channels', first])})`);
    else {
      firstAt.set(name, i);
      byName.set(name, channel);
    }
  }

  for (const [i, channel] of channels) {
    const firstLines = new Map<string, number>();
    for (const [j, destination] of entries(channel['destinations'])) {
      const at = ['channels', i, 'destinations', j];
      const name = destination['name'];
      if (typeof name !== 'string') continue;
      const first = firstLines.get(name);
      if (first === undefined) firstLines.set(name, lineOf(source, at));
      else fail([...at, 'name'], `duplicate destination name "${name}" in this channel (first at line ${first})`);
    }
    const memory = entry(channel['scriptLimits'])['memory'];
    if (isSize(memory) && sizeBytes(memory) < minScriptMemoryBytes) {
      const minimum = `${minScriptMemoryBytes / 1024 ** 2}MB`;
      fail(['channels', i, 'scriptLimits', 'memory'], `must be at least ${minimum} (got ${describeValue(memory)})`);
    }
    const script = channel['script'];
    if (typeof script === 'string' && script !== '' && !isFile(path.resolve(dir, script))) {
      report(source, 'SCRIPT_NOT_FOUND', ['channels', i, 'script'], `script not found: ${path.resolve(dir, script)}`);
    }
  }

  // Each source and destination checks its own keys and says what it claims.
  const https = isEntry(engine['https']) ? engine['https'] : undefined;
  const services: ConfigCheck['engine'] = {
    ...(https && { https: { plain: https['plain'] === true, clientCert: https['clientCert'] ?? engineDefaults.https.clientCert } }),
    websocket: isEntry(engine['websocket']),
  };
  const claims: Claimed[] = [];
  for (const [i, channel] of channels) {
    const owned: Array<{ at: KeyPath; raw: Entry; connector: Pick<SourceConnector, 'check' | 'claims'> | undefined }> = [];
    const src = channel['source'];
    if (isEntry(src)) owned.push({ at: ['channels', i, 'source'], raw: src, connector: findSource(src['type']) });
    for (const [j, raw] of entries(channel['destinations'])) {
      owned.push({ at: ['channels', i, 'destinations', j], raw, connector: findDestination(raw['type']) });
    }
    for (const { at, raw, connector } of owned) {
      const check: ConfigCheck = {
        fail: (key, message) => fail([...at, ...key], message),
        checkFile: (value, key) => checkFile(value, [...at, ...key]),
        dir,
        engine: services,
      };
      connector?.check?.(raw, check);
      for (const claim of connector?.claims?.(raw, dir) ?? []) claims.push({ claim, channel: String(channel['name']), in: at });
    }
  }

  checkHandOffs(source, claims, byName);
  checkPorts(source, engine, claims);
  checkHttpsPaths(source, claims);
  checkFolders(source, claims);
  checkEngine(source, engine, claims, checkFile);
}
