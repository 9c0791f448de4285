#!/usr/bin/env node
// CLI launcher: enables relaxed SIMD on Node 20 (on by default in newer Node) before any wasm is compiled.
import v8 from 'node:v8';
try {
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
} catch {
  /* newer Node: already on */
}
const { main } = await import('../dist/src/cli/main.js');
await main(process.argv.slice(2));
