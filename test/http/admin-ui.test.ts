import test from 'ava';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { startAdmin } from '../helpers/admin.ts';
import { tempDir } from '../helpers/temp.ts';

// The web UI's files: `/` and `/ui/*` from the admin-ui folder, with content types, revalidation,
// and nothing else — no listings, no dot files, no way out of the folder.

const setup = async (t: Parameters<typeof startAdmin>[0]) => {
  const outside = await tempDir(t);
  await writeFile(join(outside, 'secret.txt'), 'outside');
  const ui = await tempDir(t);
  await mkdir(join(ui, 'views'));
  await writeFile(join(ui, 'index.html'), '<!doctype html><title>Ferry</title>');
  await writeFile(join(ui, 'app.js'), 'export {};');
  await writeFile(join(ui, 'style.css'), 'body{}');
  await writeFile(join(ui, 'favicon.svg'), '<svg/>');
  await writeFile(join(ui, 'views', 'dashboard.js'), 'export const x = 1;');
  await writeFile(join(ui, 'views', 'a b.js'), 'export const y = 2;');
  await writeFile(join(ui, '.env'), 'SECRET=1');
  await writeFile(join(ui, 'blob.bin'), Buffer.from([0, 1, 2]));
  await symlink(join(outside, 'secret.txt'), join(ui, 'leak.txt'));
  await symlink(outside, join(ui, 'leakdir'));
  return startAdmin(t, { uiDir: ui });
};

/** Sends the path exactly as written (fetch would normalize `..`). */
const raw = (base: string, path: string): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });

test('serves index.html at / and files under /ui/ with their content types, never cached unrevalidated', async (t) => {
  const { base } = await setup(t);
  const cases: Array<[string, string, string]> = [
    ['/', 'text/html; charset=utf-8', '<!doctype html><title>Ferry</title>'],
    ['/ui/index.html', 'text/html; charset=utf-8', '<!doctype html><title>Ferry</title>'],
    ['/ui/app.js', 'text/javascript; charset=utf-8', 'export {};'],
    ['/ui/style.css', 'text/css; charset=utf-8', 'body{}'],
    ['/ui/favicon.svg', 'image/svg+xml', '<svg/>'],
    ['/ui/views/dashboard.js', 'text/javascript; charset=utf-8', 'export const x = 1;'],
    ['/ui/views/a%20b.js', 'text/javascript; charset=utf-8', 'export const y = 2;'],
    ['/ui/blob.bin', 'application/octet-stream', '\u0000\u0001\u0002'],
  ];
  for (const [path, type, body] of cases) {
    const response = await fetch(base + path);
    t.is(response.status, 200, path);
    t.is(response.headers.get('content-type'), type, path);
    t.is(response.headers.get('cache-control'), 'no-cache', path);
    t.is(response.headers.get('x-content-type-options'), 'nosniff', path);
    t.is(response.headers.get('x-frame-options'), 'DENY', path);
    t.regex(response.headers.get('content-security-policy') ?? '', /^default-src 'self'; .*frame-ancestors 'none'$/, path);
    t.is(await response.text(), body, path);
  }

  const first = await fetch(`${base}/ui/app.js`);
  const etag = first.headers.get('etag')!;
  t.regex(etag, /^W\/"[0-9a-f]+-[0-9a-f]+"$/);
  const again = await fetch(`${base}/ui/app.js`, { headers: { 'if-none-match': etag } });
  t.is(again.status, 304);
  t.is(await again.text(), '');

  const head = await fetch(`${base}/ui/style.css`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers.get('content-length'), '6');
});

test('no listings, dot files, traversal or symlinks out of the folder', async (t) => {
  const { base } = await setup(t);
  const refused = [
    '/ui/',
    '/ui/views',
    '/ui/views/',
    '/ui/.env',
    '/ui/../package.json',
    '/ui/views/../../secret.txt',
    '/ui/%2e%2e/package.json',
    '/ui/views%2f..%2f..%2fpackage.json',
    '/ui/..%5c..%5cpackage.json',
    '/ui/missing.js',
    '/ui/app.js%00.png',
    '/ui/%E0%A4%A',
    '/ui/leak.txt',
    '/ui/leakdir/secret.txt',
    '/ui//etc/passwd',
  ];
  for (const path of refused) {
    const response = await raw(base, path);
    t.is(response.status, 404, path);
    t.is(response.body, 'not found', path);
  }
  // Other paths are not the UI's: the API answers them (or nothing does).
  t.is((await raw(base, '/index.html')).status, 404);
  t.is((await fetch(`${base}/ui/app.js`, { method: 'POST' })).status, 404);
});

test('without an index.html, / is a plain 404', async (t) => {
  const ui = await tempDir(t);
  const { base } = await startAdmin(t, { uiDir: ui });
  const response = await fetch(`${base}/`);
  t.is(response.status, 404);
});
