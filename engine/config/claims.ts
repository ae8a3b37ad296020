// What sources and destinations claim (connector.ts, Claim), checked across every channel: each is
// said by one connector about itself, and only the loader sees them all. A port, an HTTPS path or a
// watched folder belongs to one owner; a folder files are moved to is watched by none; a hand-off
// goes to a channel that exists and takes hand-offs, and hand-offs close no cycle.

import type { Claim } from '../connector.ts';
import { findSource, sourceConnectors } from '../connectors.ts';
import type { KeyPath } from './contract.ts';
import { engineDefaults } from './engine-schema.ts';
import { report, type ConfigSource } from './report.ts';
import { didYouMean } from './schema-errors.ts';
import { entry, type Entry } from './units.ts';

/** A claim with where it was made: its owner's channel name, and the source or destination it is in. */
export interface Claimed {
  claim: Claim;
  channel: string;
  /** The key path of the source or destination that claims it. */
  in: KeyPath;
}

type ClaimedOf<K extends Claim['kind']> = Claimed & { claim: Extract<Claim, { kind: K }> };

const fail = (source: ConfigSource, at: KeyPath, message: string): void => report(source, 'CONFIG_INVALID', at, message);

const ofKind = <K extends Claim['kind']>(claims: Claimed[], kind: K): Array<ClaimedOf<K>> =>
  claims.filter((c): c is ClaimedOf<K> => c.claim.kind === kind);

/** Where a claim is: its key path inside its source or destination, from the file's root. */
const where = (claimed: Claimed): KeyPath => [...claimed.in, ...claimed.claim.at];

/**
 * Every hand-off goes to a channel of this file whose source takes hand-offs, and no chain of them
 * comes back to where it started (a message would go round forever).
 */
export function checkHandOffs(source: ConfigSource, claims: Claimed[], byName: ReadonlyMap<string, Entry>): void {
  const takers = sourceConnectors.filter((c) => c.takesHandoffs).map((c) => c.type);
  const handOffs = new Map<string, Array<{ to: string; at: KeyPath }>>();
  for (const claimed of ofKind(claims, 'hand-off')) {
    const target = claimed.claim.channel;
    const found = byName.get(target);
    if (!found) {
      fail(source, where(claimed), `no channel named "${target}" in this file${didYouMean(target, [...byName.keys()])}`);
    } else if (!findSource(entry(found['source'])['type'])?.takesHandoffs) {
      fail(source, where(claimed), `channel "${target}" does not take hand-offs: its source must be { type: ${takers.join(' or ')} }`);
    } else {
      const list = handOffs.get(claimed.channel) ?? [];
      list.push({ to: target, at: where(claimed) });
      handOffs.set(claimed.channel, list);
    }
  }

  // Depth-first over hand-offs; an edge back onto the current path closes a cycle, reported once
  // at the hand-off that closes it.
  const trail: string[] = [];
  const done = new Set<string>();
  const walk = (name: string): void => {
    trail.push(name);
    for (const edge of handOffs.get(name) ?? []) {
      const start = trail.indexOf(edge.to);
      if (start >= 0) fail(source, edge.at, `hand-off cycle ${[...trail.slice(start), edge.to].join(' → ')}`);
      else if (!done.has(edge.to)) walk(edge.to);
    }
    trail.pop();
    done.add(name);
  };
  for (const name of handOffs.keys()) if (!done.has(name)) walk(name);
}

const wildcardHosts = new Set(['0.0.0.0', '::', '']);
const canonicalHost = (host: string): string => (host === 'localhost' ? '127.0.0.1' : host);

/** Two listeners conflict on the same port when their hosts overlap; port 0 is always free. The engine's own listeners first. */
export function checkPorts(source: ConfigSource, engine: Entry, claims: Claimed[]): void {
  interface Listener {
    host: string;
    port: unknown;
    at: KeyPath;
    label: string;
  }
  const admin = entry(engine['admin']);
  const listeners: Listener[] = [
    {
      host: String(admin['host'] ?? engineDefaults.admin.host),
      port: admin['port'] ?? engineDefaults.admin.port,
      at: ['engine', 'admin', 'port'],
      label: 'the admin API',
    },
  ];
  const https = entry(engine['https']);
  if (https['port'] !== undefined) {
    listeners.push({ host: String(https['host'] ?? engineDefaults.https.host), port: https['port'], at: ['engine', 'https', 'port'], label: 'the HTTPS listener' });
  }
  for (const claimed of ofKind(claims, 'port')) {
    listeners.push({ host: claimed.claim.host, port: claimed.claim.port, at: where(claimed), label: `channel "${claimed.channel}"` });
  }
  const bound = listeners.filter((l) => Number.isInteger(l.port) && l.port !== 0);
  for (const [j, later] of bound.entries()) {
    const earlier = bound
      .slice(0, j)
      .find(
        (e) =>
          e.port === later.port &&
          (wildcardHosts.has(e.host) || wildcardHosts.has(later.host) || canonicalHost(e.host) === canonicalHost(later.host)),
      );
    if (earlier) {
      const taken = `${later.host}:${later.port} is already taken by ${earlier.label} on ${earlier.host}:${earlier.port}`;
      fail(source, later.at, taken);
    }
  }
}

/** Each path on the HTTPS listener belongs to one channel, the first to claim it. */
export function checkHttpsPaths(source: ConfigSource, claims: Claimed[]): void {
  const owners = new Map<string, string>();
  for (const claimed of ofKind(claims, 'https-path')) {
    const { path } = claimed.claim;
    const owner = owners.get(path);
    if (owner === undefined) owners.set(path, claimed.channel);
    else fail(source, where(claimed), `path ${path} is already used by channel "${owner}"`);
  }
}

/**
 * Each folder is watched by one source only, and no folder a source moves files to is watched (by
 * itself or another), or files moved there would be read again.
 */
export function checkFolders(source: ConfigSource, claims: Claimed[]): void {
  const watched = new Map<string, string>();
  for (const claimed of ofKind(claims, 'watched-folder')) {
    const first = watched.get(claimed.claim.dir);
    if (first === undefined) watched.set(claimed.claim.dir, claimed.channel);
    else fail(source, where(claimed), `${claimed.claim.dir} is already watched by channel "${first}"; two sources would race for its files`);
  }
  const ownFolder = (claimed: Claimed): string | undefined =>
    ofKind(claims, 'watched-folder').find((c) => c.in.join('/') === claimed.in.join('/'))?.claim.dir;
  for (const claimed of ofKind(claims, 'moves-to')) {
    const target = claimed.claim.dir;
    const reader = watched.get(target);
    if (target === ownFolder(claimed)) fail(source, where(claimed), 'must not be the watched folder itself: files moved there would be read again');
    else if (reader !== undefined) fail(source, where(claimed), `${target} is watched by channel "${reader}": files moved there would be read again`);
  }
}
