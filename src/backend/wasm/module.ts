// Loads the compiled kernels. Two builds exist (scripts/build-wasm.mjs): relaxed SIMD (fused
// multiply-add) and plain SIMD; the relaxed one is used when this engine validates it (Node 20 needs
// --experimental-wasm-relaxed-simd, which bin/lineage.js and scripts/run-tests.mjs set).
import { relaxedBase64, simdBase64 } from './wasm-bytes.js';

export type WasmVariant = 'relaxed' | 'simd';

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const bytesCache = new Map<WasmVariant, Uint8Array<ArrayBuffer>>();
export function wasmBytes(variant: WasmVariant): Uint8Array<ArrayBuffer> {
  let b = bytesCache.get(variant);
  if (!b) {
    b = decodeBase64(variant === 'relaxed' ? relaxedBase64 : simdBase64);
    bytesCache.set(variant, b);
  }
  return b;
}

/** whether this engine accepts the relaxed-SIMD build */
export function relaxedSimdSupported(): boolean {
  return WebAssembly.validate(wasmBytes('relaxed'));
}

const moduleCache = new Map<WasmVariant, Promise<WebAssembly.Module>>();

/** Compiles (once) and returns the chosen build. 'auto' prefers relaxed SIMD. */
export async function loadKernelModule(
  variant: WasmVariant | 'auto' = 'auto',
): Promise<{ module: WebAssembly.Module; variant: WasmVariant }> {
  let v: WasmVariant;
  if (variant === 'auto') v = relaxedSimdSupported() ? 'relaxed' : 'simd';
  else v = variant;
  if (v === 'relaxed' && !relaxedSimdSupported()) {
    throw new Error(
      'wasm backend: this engine rejects the relaxed-SIMD build (Node 20: run with --experimental-wasm-relaxed-simd, or ask for variant "simd")',
    );
  }
  if (!WebAssembly.validate(wasmBytes(v))) {
    throw new Error(`wasm backend: this engine rejects the ${v} build (needs WebAssembly SIMD and threads)`);
  }
  let m = moduleCache.get(v);
  if (!m) {
    m = WebAssembly.compile(wasmBytes(v));
    moduleCache.set(v, m);
  }
  return { module: await m, variant: v };
}
