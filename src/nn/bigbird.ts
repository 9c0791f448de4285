// BigBird's block-sparse attention pattern (Zaveri et al. 2020, "ITC": internal transformer construction) in
// the layout of transformers' BigBirdBlockSparseAttention, as an additive -inf mask over the full score
// matrix. The sequence is cut into blocks of `blockSize` (the last one may be partial; transformers pads to
// a whole block with masked keys, which changes nothing for the real tokens):
//   - the first and the last block are global: they attend to every key and every query attends to them;
//   - every other query block sees its neighbours (3 sliding blocks: i-1, i, i+1);
//   - and `randomBlocks` random blocks drawn from the middle blocks outside that window.
// transformers draws the random blocks with numpy's global generator in training and uses none in eval (its
// rand_attn is all zeros there: block 0 again, counted twice); Lineage draws them from a seeded Rng per query
// block, so a pattern is reproducible and the same in training and eval. Short sequences fall back to full
// attention exactly when transformers does (`seq_len <= (5 + 2 * num_random_blocks) * block_size`).
//
// Notation: T tokens, n blocks, b query block, c key block.
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../ops/index.js';
import { Rng } from '../tensor/random.js';
import type { AttentionWindow } from './config.js';

export type BigBirdWindow = Extract<AttentionWindow, { kind: 'bigbird' }>;

/** Whether transformers (and Lineage) run this length as plain full attention. */
export function bigbirdFallsBackToFull(w: BigBirdWindow, T: number): boolean {
  return T <= (5 + 2 * w.randomBlocks) * w.blockSize;
}

/** The random key blocks of middle query block b (1..n-2): seeded, from blocks 1..n-2 outside b-1..b+1. */
export function bigbirdRandomBlocks(w: BigBirdWindow, b: number, n: number): number[] {
  const pool: number[] = [];
  for (let c = 1; c < n - 1; c++) if (Math.abs(c - b) > 1) pool.push(c);
  return new Rng(w.seed * 1000003 + b)
    .shuffle(pool)
    .slice(0, w.randomBlocks)
    .sort((x, y) => x - y);
}

/** [n, n] block visibility: visible[b][c] */
export function bigbirdBlockPattern(w: BigBirdWindow, n: number): boolean[][] {
  const out = Array.from({ length: n }, (_, b) =>
    Array.from({ length: n }, (_, c) => b === 0 || b === n - 1 || c === 0 || c === n - 1 || Math.abs(b - c) <= 1),
  );
  for (let b = 1; b < n - 1; b++) for (const c of bigbirdRandomBlocks(w, b, n)) out[b]![c] = true;
  return out;
}

/** [1, 1, T, T] bias (0 visible, -inf hidden), or null when the length runs as full attention. */
export function bigbirdBias(w: BigBirdWindow, T: number): Tensor | null {
  if (bigbirdFallsBackToFull(w, T)) return null;
  const n = Math.ceil(T / w.blockSize);
  const pattern = bigbirdBlockPattern(w, n);
  const out = new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    const row = pattern[Math.floor(i / w.blockSize)]!;
    for (let j = 0; j < T; j++) out[i * T + j] = row[Math.floor(j / w.blockSize)] ? 0 : -Infinity;
  }
  return tensor(out, { shape: [1, 1, T, T] });
}
