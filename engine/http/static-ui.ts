import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import type Koa from 'koa';

// Serves the web UI's files: `/` is admin-ui/index.html and `/ui/<path>` is admin-ui/<path>.
// Files only: no directory listings, no dot files, nothing outside the folder (`..`, encoded
// slashes and symlinks leading out are refused). The files are not fingerprinted, so browsers
// revalidate each time (no-cache + ETag: a 304 costs a stat).

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
};

/** Scripts and styles from this origin only; inline styles allowed (style attributes), never framed. */
const UI_CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The file under `root` a URL path names, or undefined when it names nothing servable. */
const resolveUnder = async (root: string, urlPath: string): Promise<{ file: string; size: number; mtimeMs: number } | undefined> => {
  let relative: string;
  if (urlPath === '/') relative = 'index.html';
  else if (urlPath.startsWith('/ui/')) relative = urlPath.slice('/ui/'.length);
  else return undefined;
  try {
    relative = decodeURIComponent(relative);
  } catch {
    return undefined;
  }
  const parts = relative.split('/');
  if (parts.some((part) => part === '' || part.startsWith('.') || part.includes('\\') || part.includes('\0'))) return undefined;
  try {
    const realRoot = await realpath(root);
    const file = await realpath(join(realRoot, ...parts));
    if (!file.startsWith(realRoot + sep)) return undefined;
    const info = await stat(file);
    return info.isFile() ? { file, size: info.size, mtimeMs: info.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
};

export const serveUi =
  (root: string): Koa.Middleware =>
  async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path !== '/' && !ctx.path.startsWith('/ui/')) return next();
    const found = await resolveUnder(root, ctx.path);
    if (!found) {
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = 'not found';
      return;
    }
    const etag = `W/"${found.size.toString(16)}-${Math.floor(found.mtimeMs).toString(16)}"`;
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', etag);
    ctx.set('Content-Security-Policy', UI_CONTENT_SECURITY_POLICY);
    if (ctx.get('if-none-match') === etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = contentTypes[extname(found.file).toLowerCase()] ?? 'application/octet-stream';
    ctx.length = found.size;
    ctx.body = createReadStream(found.file);
  };
