// What the schema cannot say about the engine section: the admin listener's certificate, the HTTPS
// listener's TLS settings, and WebSocket push, which runs on that listener on a path of its own.
// (What sources and destinations need of these, each connector checks itself.)

import { parseAddressRule } from '../wire/address-rules.ts';
import type { Claimed } from './claims.ts';
import type { KeyPath } from './contract.ts';
import { engineDefaults } from './engine-schema.ts';
import { report, type ConfigSource } from './report.ts';
import { entry, isEntry, type Entry } from './units.ts';

/** Reports `file not found` when a value names (relative to the config folder `dir`) no file. */
export type FileCheck = (value: unknown, at: KeyPath) => void;

export function checkEngine(source: ConfigSource, engine: Entry, claims: Claimed[], checkFile: FileCheck): void {
  const fail = (at: KeyPath, message: string) => report(source, 'CONFIG_INVALID', at, message);

  const listener = isEntry(engine['https']) ? engine['https'] : undefined;
  if (listener) {
    const at = ['engine', 'https'];
    const plain = listener['plain'] === true;
    const clientCert = listener['clientCert'] ?? engineDefaults.https.clientCert;
    if (!plain && (listener['cert'] === undefined || listener['key'] === undefined)) {
      fail(at, 'needs cert and key (make them with `ferry certs init`), or plain: true for plain HTTP');
    }
    if (clientCert !== 'none' && plain) fail([...at, 'clientCert'], 'client certificates need TLS; remove plain: true');
    else if (clientCert !== 'none' && listener['ca'] === undefined) fail([...at, 'clientCert'], 'needs ca: the CA client certificates must chain to');
    for (const key of ['cert', 'key', 'ca']) checkFile(listener[key], [...at, key]);
  }

  const websocket = isEntry(engine['websocket']) ? engine['websocket'] : undefined;
  if (websocket) {
    const at = ['engine', 'websocket'];
    if (!listener) fail(at, 'WebSocket push runs on the engine HTTPS listener: add engine.https: { port, cert, key }');
    const wsPath = websocket['path'] ?? engineDefaults.websocket.path;
    for (const claimed of claims) {
      if (claimed.claim.kind === 'https-path' && claimed.claim.path === wsPath) {
        fail(websocket['path'] === undefined ? at : [...at, 'path'], `path ${String(wsPath)} is already used by channel "${claimed.channel}"`);
      }
    }
    const allowIps = websocket['allowIps'];
    if (Array.isArray(allowIps)) {
      allowIps.forEach((rule, j) => {
        const parsed = typeof rule === 'string' ? parseAddressRule(rule) : undefined;
        if (typeof parsed === 'string') fail([...at, 'allowIps', j], parsed);
      });
    }
  }

  // The admin listener's certificate: both halves, on disk.
  const admin = entry(engine['admin']);
  if ((admin['cert'] === undefined) !== (admin['key'] === undefined)) {
    fail(['engine', 'admin', admin['cert'] === undefined ? 'key' : 'cert'], 'HTTPS for the admin API needs both cert and key');
  }
  for (const key of ['cert', 'key']) checkFile(admin[key], ['engine', 'admin', key]);
}
