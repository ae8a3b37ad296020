import test from 'ava';
import { readFile } from 'node:fs/promises';

// docs/configuration.md is the reference of every channels.yaml key. The published JSON Schema
// (engine/channels.schema.json, itself checked against config-schema.ts by config.test.ts) is the
// source of truth: each of its keys must have a row in the right table with the schema's default, and
// no row may name a key the schema does not have.

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  const?: string;
  default?: unknown;
}

const read = (path: string) => readFile(new URL(`../../${path}`, import.meta.url), 'utf8');

/** Every key below `node` that is not an object of keys itself, with its default: `tls.cert` → undefined. */
const leaves = (node: SchemaNode, prefix = '', skip: string[] = []): Map<string, unknown> => {
  const found = new Map<string, unknown>();
  for (const [key, sub] of Object.entries(node.properties ?? {})) {
    if (skip.includes(key)) continue;
    if (sub.properties) for (const [inner, value] of leaves(sub, `${prefix}${key}.`)) found.set(inner, value);
    else found.set(`${prefix}${key}`, sub.default);
  }
  return found;
};

/** The branches of a `type`-discriminated union, by type. */
const branches = (node: SchemaNode): Map<string, SchemaNode> =>
  new Map((node.oneOf ?? []).map((branch) => [branch.properties!['type']!.const!, branch]));

/** Table rows `| `key` | default | … |`, by section: the first code span of the h2 and of the h3 (or the h3's text). */
const documentedRows = (markdown: string): Map<string, Map<string, string>> => {
  const sections = new Map<string, Map<string, string>>();
  const codeOf = (heading: string) => /`([^`]+)`/.exec(heading)?.[1] ?? heading.replace(/^#+\s*/, '');
  let h2 = '';
  let h3 = '';
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    if (line.startsWith('## ')) [h2, h3] = [codeOf(line), ''];
    else if (line.startsWith('### ')) h3 = codeOf(line);
    const row = /^\| `([^`]+)` \| ([^|]*?) \|/.exec(line);
    if (!row) continue;
    const id = `${h2}/${h3}`;
    if (!sections.has(id)) sections.set(id, new Map());
    sections.get(id)!.set(row[1]!, row[2]!);
  }
  return sections;
};

test('docs/configuration.md documents every key of the schema with its default, and no other', async (t) => {
  const schema = JSON.parse(await read('engine/channels.schema.json')) as SchemaNode;
  const rows = documentedRows(await read('docs/configuration.md'));
  const channel = schema.properties!['channels']!.items!;
  const sources = branches(channel.properties!['source']!);
  const destinations = branches(channel.properties!['destinations']!.items!);
  const common = ['name', 'order', 'retry'];

  // Section of the doc → the keys it must hold, as written in its rows.
  const expected = new Map<string, Map<string, unknown>>();
  const engineRows = leaves(schema.properties!['engine']!, 'engine.');
  for (const [key, value] of engineRows) {
    const section = key.startsWith('engine.https.') ? 'engine/engine.https' : key.startsWith('engine.websocket.') ? 'engine/engine.websocket' : 'engine/';
    if (!expected.has(section)) expected.set(section, new Map());
    expected.get(section)!.set(key, value);
  }
  expected.set('channels[]/', leaves(channel));
  for (const [type, branch] of sources) expected.set(`source/${type}`, leaves(branch, '', ['type']));
  const anyDestination = [...destinations.values()][0]!;
  expected.set('destinations[]/Every destination', new Map([...leaves(anyDestination)].filter(([key]) => common.some((c) => key === c || key.startsWith(`${c}.`)))));
  for (const [type, branch] of destinations) expected.set(`destinations[]/${type}`, leaves(branch, '', ['type', ...common]));

  for (const [section, keys] of expected) {
    const documented = rows.get(section) ?? new Map<string, string>();
    for (const [key, value] of keys) {
      const cell = documented.get(key);
      if (cell === undefined) t.fail(`${section}: no row for ${key}`);
      else if (value !== undefined) t.is(cell, `\`${String(value)}\``, `${section}: default of ${key}`);
    }
    const extra = [...documented.keys()].filter((key) => !keys.has(key));
    t.deepEqual(extra, [], `${section}: rows for keys the schema does not have`);
  }
  const unknownSections = [...rows.keys()].filter((section) => !expected.has(section));
  t.deepEqual(unknownSections, [], 'tables of keys outside the sections the schema defines');
  // Each source and destination type has its section, even one without keys of its own.
  t.true(sources.size >= 5 && destinations.size >= 6);
});

test('the example in docs/configuration.md is the bundled channels.yaml as it is', async (t) => {
  const doc = await read('docs/configuration.md');
  const shown = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
  t.is(shown, await read('channels.yaml'));
});
