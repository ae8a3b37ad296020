import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';

// README.md is the front page: short, with the two commands CI and newcomers rely on, the real
// example script, and a link to every guide in docs/.

const read = (path: string) => readFile(new URL(`../../${path}`, import.meta.url), 'utf8');

test('README.md stays a front page: under 200 lines, with the install-and-run and the test command', async (t) => {
  const readme = await read('README.md');
  t.true(readme.split('\n').length < 200, `README.md has ${readme.split('\n').length} lines`);
  t.true(readme.includes('```sh\nnpm ci && npx ferry start\n```'));
  t.true(readme.includes('```sh\nnpm test\n```'));
});

test('README.md and docs/scripts.md show channels/adt-archive.ts as it is', async (t) => {
  const script = await read('channels/adt-archive.ts');
  for (const doc of ['README.md', 'docs/scripts.md']) {
    const shown = /```ts\n([\s\S]*?)```/.exec(await read(doc))?.[1];
    t.is(shown, script, doc);
  }
});

test("README.md's documentation list links every guide in docs/", async (t) => {
  const readme = await read('README.md');
  const guides = (await readdir(new URL('../../docs/', import.meta.url))).filter((name) => name.endsWith('.md'));
  t.true(guides.length > 0);
  const unlisted = guides.filter((name) => !readme.includes(`- [docs/${name}](docs/${name}) — `));
  t.deepEqual(unlisted, []);
});
