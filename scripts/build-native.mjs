// Builds the native CPU backend (binding.gyp, native/*.cc) with node-gyp at `npm install`.
// It NEVER fails the install: without a compiler (or make, or Node's headers) it prints one line
// and Lineage uses the WebAssembly backend. Nothing is downloaded: Node's own headers are used
// (--nodedir next to the running node) when they are installed, which they are with Debian's and
// the official Node packages.
//   LINEAGE_SKIP_NATIVE=1   skip the build
//   LINEAGE_NATIVE_VERBOSE=1 show the compiler output
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const notice = (why) => console.log(`lineage: native backend not built (${why}); using the WebAssembly backend`);

/** node-gyp: npm's bundled copy (what `npm install` itself would use), else a local or global one */
function findNodeGyp() {
  const env = process.env.npm_config_node_gyp;
  if (env && existsSync(env)) return env;
  const require = createRequire(import.meta.url);
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // not installed locally
  }
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  for (const p of [
    path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(prefix, 'share', 'nodejs', 'node-gyp', 'bin', 'node-gyp.js'),
  ]) {
    if (existsSync(p)) return p;
  }
  return null;
}

/** a Node install prefix holding include/node/node_api.h for the running version, so node-gyp downloads nothing */
export function findNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const header = path.join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(header)) return null;
  const src = readFileSync(header, 'utf8');
  const v = ['MAJOR', 'MINOR', 'PATCH'].map((k) => new RegExp(`#define NODE_${k}_VERSION (\\d+)`).exec(src)?.[1]);
  return v.join('.') === process.versions.node ? prefix : null;
}

function main() {
  if (process.env.LINEAGE_SKIP_NATIVE === '1') return notice('LINEAGE_SKIP_NATIVE=1');
  if (!existsSync(path.join(root, 'binding.gyp'))) return notice('binding.gyp is missing');
  const gyp = findNodeGyp();
  if (!gyp) return notice('node-gyp not found');
  const nodedir = findNodeDir();
  if (!nodedir) return notice(`Node ${process.versions.node} headers not found next to ${process.execPath}`);
  const verbose = process.env.LINEAGE_NATIVE_VERBOSE === '1';
  const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, `--jobs=${Math.min(4, 2)}`], {
    cwd: root,
    stdio: verbose ? 'inherit' : 'pipe',
    encoding: 'utf8',
    env: process.env,
  });
  if (r.error || r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
    const first = out.split('\n').find((l) => /error|not found|No such file|cannot/i.test(l) && !/^gyp info/.test(l));
    return notice(r.error ? r.error.message : (first ?? `node-gyp exited with ${r.status}`).trim().slice(0, 160));
  }
  console.log('lineage: native backend built (build/Release/lineage_native.node)');
}

// run as a script (npm install); imported (scripts/build-native-emu.mjs) for findNodeDir only
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    notice(e instanceof Error ? e.message : String(e));
  }
  process.exit(0);
}
