// The KV cache's two per-step costs by KV dtype, at the shapes of the batched shakespeare-llama bench
// (6 layers, 4 kv heads of 32, 8 query heads): writing a step's keys / values into the pool (the kernel's
// native write against the host encoder, `writeKv`) and the paged attention of a 32-sequence decoding step
// over scattered blocks (with a 48 MB sweep between steps, as a step's weights evict the cache).
//   node --experimental-wasm-relaxed-simd dist/bench/kv-paths.js [--threads T] [--positions P] [--reps R]
// Prints one JSON object: medians in microseconds, per forward (6 layers) for writes, per layer for attention.
import { useFastBackend, shutdownBackend } from '../src/cli/backend-node.js';
import { KvPool, type LayerSpec } from '../src/infer/engine/kv-pool.js';
import { writeKv, type BatchLayout } from '../src/infer/engine/paged-attention.js';
import { KV_DTYPES, type KvDtype } from '../src/infer/engine/kv-dtype.js';
import { Rng } from '../src/tensor/random.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = Number(i >= 0 ? process.argv[i + 1] : def);
  if (!Number.isInteger(v) || v < 1) throw new Error(`kv-paths: --${name} must be a positive integer`);
  return v;
}

const LAYERS = 6;
const SPEC: LayerSpec = { kvHeads: 4, kDim: 32, vDim: 32, window: null };
const [NH, BS, SEQS] = [8, 16, 32];
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

/** T tokens spread over SEQS sequences whose blocks are a shuffled draw of the pool's */
function layoutOf(pool: KvPool, T: number, positions: number, rng: Rng): BatchLayout {
  const nb = Math.ceil(positions / BS);
  const ids = rng.shuffle(Array.from({ length: pool.numBlocks }, (_, i) => i));
  const tables = Array.from({ length: SEQS }, (_, s) => Int32Array.from(ids.slice(s * nb, (s + 1) * nb)));
  const seq = Int32Array.from({ length: T }, (_, t) => t % SEQS);
  const pos = Int32Array.from({ length: T }, (_, t) => positions - 1 - Math.floor(t / SEQS));
  return { blockSize: BS, seq, pos, tables };
}

function writes(pool: KvPool, T: number, positions: number, reps: number, rng: Rng) {
  const layout = layoutOf(pool, T, positions, rng);
  const rnd = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const [k, v] = [rnd(SPEC.kvHeads * T * SPEC.kDim), rnd(SPEC.kvHeads * T * SPEC.vDim)];
  const time = (f: (l: number) => void) => {
    const ts: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      for (let l = 0; l < LAYERS; l++) f(l);
      ts.push((performance.now() - t0) * 1000);
    }
    return median(ts);
  };
  const host = time((l) => writeKv(pool.layers[l]!, layout, k, v));
  const kernel = pool.kernel?.write ? time((l) => pool.kernel!.write!(pool.layers[l]!, layout, k, v)) : null;
  return { tokens: T, hostUs: host, kernelUs: kernel };
}

function attention(pool: KvPool, positions: number, reps: number, rng: Rng) {
  const layout = layoutOf(pool, SEQS, positions, rng);
  for (const s of pool.layers) {
    const fill = pool.dtype === 'float32' ? 0.01 : pool.dtype === 'int8' ? 1 : 0x3c00; // 1.0 as float16 / small
    s.k.fill(fill);
    s.v.fill(fill);
    s.kScale?.fill(0.01);
    s.vScale?.fill(0.01);
  }
  const q = Float32Array.from({ length: NH * SEQS * SPEC.kDim }, () => rng.normal());
  const sweep = new Float32Array(12 << 20);
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < sweep.length; i += 16) sweep[i]! += 1;
    for (let l = 0; l < LAYERS; l++) {
      const t0 = performance.now();
      pool.kernel!.run(pool.layers[l]!, layout, q, NH, 0.17);
      ts.push((performance.now() - t0) * 1000);
    }
  }
  return { sequences: SEQS, positions, perLayerUs: median(ts) };
}

async function main(): Promise<void> {
  const threads = arg('threads', 2);
  const positions = arg('positions', 130);
  const reps = arg('reps', 60);
  const backend = await useFastBackend({ threads });
  const rng = new Rng(1);
  const out: Record<string, unknown> = { bench: 'kv-paths', backend: backend.name, threads, reps };
  const rows: Record<KvDtype, unknown> = {} as Record<KvDtype, unknown>;
  for (const dtype of KV_DTYPES) {
    const pool = new KvPool(
      Array.from({ length: LAYERS }, () => SPEC),
      BS,
      64 << 20,
      'auto',
      dtype,
      true,
    );
    rows[dtype] = {
      kernel: pool.kernel?.constructor.name ?? 'host',
      writes: [32, 512].map((T) => writes(pool, T, positions, reps, rng)),
      attention: pool.kernel ? attention(pool, positions, reps, rng) : null,
    };
    pool.dispose();
  }
  out.dtypes = rows;
  console.log(JSON.stringify(out, null, 1));
  await shutdownBackend();
}

await main();
