// Regenerates engine/channels.schema.json (the JSON Schema editors use for channels.yaml) from
// engine/config/schema.ts (with each source and destination type's keys, engine/connectors.ts).
// test/config.test.ts fails while the committed file is stale.
//   node --import tsx scripts/write-config-schema.ts

import { writeFile } from 'node:fs/promises';
import { renderConfigSchema } from '../engine/config/schema.ts';

const target = new URL('../engine/channels.schema.json', import.meta.url);
await writeFile(target, renderConfigSchema());
console.log(`wrote ${target.pathname}`);
