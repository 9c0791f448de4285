// Node-only: finds and loads the compiled addon (build/Release/lineage_native.node, built by
// scripts/build-native.mjs at install). Returns null with the reason when it is missing or fails to
// load, so callers fall back to the WebAssembly backend.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeAddon } from './addon.js';

let cached: { addon: NativeAddon | null; error: string } | null = null;

/** package root: this file is dist/src/backend/native/addon-node.js (or src/... under ts-node) */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'binding.gyp'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
}

/** candidate locations, LINEAGE_NATIVE_ADDON first */
function candidates(): string[] {
  const root = packageRoot();
  const list = [
    path.join(root, 'build', 'Release', 'lineage_native.node'),
    path.join(root, 'build', 'Debug', 'lineage_native.node'),
  ];
  const env = process.env.LINEAGE_NATIVE_ADDON;
  return env ? [path.resolve(env), ...list] : list;
}

export function loadNativeAddon(): { addon: NativeAddon | null; error: string } {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const file of candidates()) {
    if (!existsSync(file)) {
      tried.push(`${file} (missing)`);
      continue;
    }
    try {
      cached = { addon: require(file) as NativeAddon, error: '' };
      return cached;
    } catch (e) {
      tried.push(`${file} (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  cached = { addon: null, error: `native addon not built: tried ${tried.join('; ')}` };
  return cached;
}
