// Node side of the browser test: bundle the compiled page scripts with esbuild, serve them with the
// cross-origin-isolation headers, and find Debian's Chromium.
//
// esbuild bundles: it is a single well-kept npm package with no runtime dependencies, takes the ESM
// that tsc already emits (dist/) as is, and builds the three entry points in well under a second.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';

/** the repository root (this file runs from dist/test/browser/) */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIST = join(ROOT, 'dist');

export const CHROMIUM = process.env.LINEAGE_CHROMIUM ?? '/usr/bin/chromium';

/** flags that keep Chromium quiet and offline in a container (playwright adds --headless and a fresh profile) */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Bundles the page script, the engine worker and the pool's worker script into `outdir`, side by side:
 * the library finds its worker at `new URL('./worker-web.js', import.meta.url)`, i.e. next to the bundle.
 * Fails, naming the importer, if anything in the bundle pulls a Node built-in.
 */
export async function bundlePage(outdir: string): Promise<Metafile> {
  let meta: Metafile;
  try {
    const r = await build({
      entryPoints: {
        'page-main': join(DIST, 'test/browser/page-main.js'),
        'page-engine': join(DIST, 'test/browser/page-engine.js'),
        'worker-web': join(DIST, 'src/backend/wasm/worker-web.js'),
      },
      outdir,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      splitting: false,
      sourcemap: false,
      metafile: true,
      logLevel: 'silent',
      write: true,
    });
    meta = r.metafile;
  } catch (e) {
    // e.g. 'Could not resolve "node:fs"' with the importing file: core code must stay browser-safe
    throw new Error(`esbuild could not bundle the library for the browser: ${(e as Error).message}`);
  }
  const nodeImports: string[] = [];
  for (const [file, input] of Object.entries(meta.inputs)) {
    for (const imp of input.imports) {
      if (imp.path.startsWith('node:') || imp.external) nodeImports.push(`${file} imports ${imp.path}`);
    }
  }
  if (nodeImports.length) throw new Error(`the browser bundle pulls Node-only modules:\n  ${nodeImports.join('\n  ')}`);
  return meta;
}

/** the HTML page; the engine request travels as JSON in the page (no query-string parsing needed) */
export function pageHtml(request: unknown): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Lineage browser test</title><link rel="icon" href="data:,"></head>
<body>
<script type="application/json" id="request">${JSON.stringify(request).replace(/</g, '\\u003c')}</script>
<script type="module" src="bundle/page-main.js"></script>
</body></html>
`;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.safetensors': 'application/octet-stream',
};

/** COOP + COEP make the page cross-origin isolated (SharedArrayBuffer, shared wasm memory, threads) */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** `dir`/`rel`, or null when `rel` climbs out of `dir` */
function inside(dir: string, rel: string): string | null {
  const p = normalize(join(dir, rel));
  const r = relative(dir, p);
  return r.startsWith('..') || r.startsWith(sep) ? null : p;
}

/**
 * Serves `/` (isolated page), `/plain/` (the same page without the isolation headers, a control),
 * `/bundle/*` from `bundleDir` and `/models/*` from the repository's models/.
 */
export function startServer(bundleDir: string, request: unknown): Promise<{ server: Server; url: string }> {
  const html = pageHtml(request);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const isolated = !path.startsWith('/plain/');
    const p = isolated ? path : path.slice('/plain'.length);
    let body: string | Buffer | null = null;
    let type = TYPES['.html']!;
    if (p === '/') body = html;
    else {
      const dir = p.startsWith('/bundle/') ? bundleDir : p.startsWith('/models/') ? join(ROOT, 'models') : null;
      const rest = p.slice(8); // after '/bundle/' or '/models/'
      const file = dir ? inside(dir, rest) : null;
      if (file && existsSync(file) && statSync(file).isFile()) {
        body = readFileSync(file);
        type = TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream';
      }
    }
    const headers: Record<string, string> = {
      'Content-Type': type,
      'Cache-Control': 'no-store',
      ...(isolated ? ISOLATION_HEADERS : {}),
    };
    if (body === null) {
      res.writeHead(404, headers).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, headers).end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      if (!addr || typeof addr === 'string') return reject(new Error('server: no TCP address'));
      resolve({ server, url: `http://127.0.0.1:${addr.port}` });
    });
  });
}
