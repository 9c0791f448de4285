// Backend selection for the CLI and for library users under Node (`useFastBackend`):
//   native    the C++ addon (AVX-512 / AVX2 / portable kernels, native threads), when it was built
//   wasm      the WebAssembly SIMD backend on worker threads
//   reference the pure-TypeScript kernels
// Default: native when the addon loads, else wasm (with a one-line notice naming why), else reference.
// LINEAGE_BACKEND=native|wasm|reference or `--backend` (setBackendChoice) choose explicitly; an explicit
// choice that cannot load is an error, not a silent fallback. LINEAGE_THREADS=N sets the thread count.
import os from 'node:os';
import { getBackend, setBackend } from '../tensor/engine.js';
import type { Backend } from '../backend/backend.js';

export const BACKEND_CHOICES = ['native', 'wasm', 'reference'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

let active: (Backend & { dispose?: () => void | Promise<void> }) | null = null;
let choice: BackendChoice | null = null;

/** validates a --backend / LINEAGE_BACKEND value */
export function parseBackendChoice(v: string, from: string): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as BackendChoice;
  throw new Error(`${from} must be one of ${BACKEND_CHOICES.join(', ')} (got '${v}')`);
}

/** `--backend` on the command line (wins over LINEAGE_BACKEND) */
export function setBackendChoice(c: BackendChoice): void {
  choice = c;
}

/** removes a global `--backend X` / `--backend=X` from the command line and records it */
export function takeBackendFlag(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--backend') {
      const v = argv[++i];
      if (v === undefined) throw new Error(`--backend needs a value (${BACKEND_CHOICES.join(', ')})`);
      setBackendChoice(parseBackendChoice(v, '--backend'));
    } else if (a.startsWith('--backend='))
      setBackendChoice(parseBackendChoice(a.slice('--backend='.length), '--backend'));
    else out.push(a);
  }
  return out;
}

/** the explicit choice (--backend, then LINEAGE_BACKEND), or null for the default order */
export function requested(): BackendChoice | null {
  if (choice) return choice;
  const env = process.env.LINEAGE_BACKEND;
  return env ? parseBackendChoice(env, 'LINEAGE_BACKEND') : null;
}

export function defaultThreads(): number {
  const env = process.env.LINEAGE_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new Error(`LINEAGE_THREADS must be a positive integer (got '${env}')`);
    return n;
  }
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** the native backend, or the reason it is unavailable */
export async function tryNativeBackend(threads: number): Promise<{ backend: Backend | null; error: string }> {
  const { loadNativeAddon } = await import('../backend/native/addon-node.js');
  const { addon, error } = loadNativeAddon();
  if (!addon) return { backend: null, error };
  const { createNativeBackend } = await import('../backend/native/backend.js');
  return { backend: createNativeBackend(addon, { threads }), error: '' };
}

async function wasmBackend(threads: number): Promise<Backend & { dispose(): Promise<void> }> {
  const mod = await import('../backend/wasm/backend.js');
  return mod.createWasmBackend({ threads });
}

export async function useFastBackend(opts: { threads?: number } = {}): Promise<Backend> {
  if (active) return active;
  const want = requested();
  if (want === 'reference') return getBackend();
  const threads = opts.threads ?? defaultThreads();
  if (want === null || want === 'native') {
    const { backend, error } = await tryNativeBackend(threads);
    if (backend) {
      active = backend;
      setBackend(active);
      return active;
    }
    if (want === 'native') throw new Error(`--backend native: ${error} (run 'npm run build:native' to build it)`);
    // the install already printed why; repeat it only when debugging
    if (process.env.LINEAGE_DEBUG) console.error(`lineage: native backend unavailable, using wasm: ${error}`);
  }
  try {
    active = await wasmBackend(threads);
    setBackend(active);
    return active;
  } catch (e) {
    if (want === 'wasm') throw new Error(`--backend wasm: ${(e as Error).message}`);
    if (process.env.LINEAGE_DEBUG) console.error(`wasm backend unavailable, using reference: ${(e as Error).message}`);
    return getBackend();
  }
}

export async function shutdownBackend(): Promise<void> {
  if (active?.dispose) await active.dispose();
  active = null;
}
