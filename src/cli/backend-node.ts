// Backend selection for CLI commands: the WebAssembly SIMD backend on all cores when it loads,
// otherwise the pure-TypeScript reference backend. LINEAGE_BACKEND=reference forces the latter;
// LINEAGE_THREADS=N sets the thread count.
import os from 'node:os';
import { getBackend, setBackend } from '../tensor/engine.js';
import type { Backend } from '../backend/backend.js';

let active: (Backend & { dispose?: () => void | Promise<void> }) | null = null;

export async function useFastBackend(opts: { threads?: number } = {}): Promise<Backend> {
  if (active) return active;
  if (process.env.LINEAGE_BACKEND === 'reference') return getBackend();
  const threads = opts.threads ?? (Number(process.env.LINEAGE_THREADS) || os.availableParallelism?.() || os.cpus().length);
  try {
    const mod = (await import('../backend/wasm/backend.js')) as { createWasmBackend: (o: { threads: number }) => Promise<Backend> };
    active = await mod.createWasmBackend({ threads });
    setBackend(active);
    return active;
  } catch (e) {
    if (process.env.LINEAGE_DEBUG) console.error(`wasm backend unavailable, using reference: ${(e as Error).message}`);
    return getBackend();
  }
}

export async function shutdownBackend(): Promise<void> {
  if (active?.dispose) await active.dispose();
  active = null;
}
