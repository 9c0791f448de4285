// Which keys each query may see, turned into the fused attention op's options: causal and sliding
// windows map to the op's own `causal` / `window` (free), key padding to `kvLen` (right padding) or an
// additive -inf bias, and sparse patterns (dilated, Longformer global tokens, BigBird blocks) to a
// -inf bias built on the host from absolute positions, so cached decoding sees the same pattern.
//
// Notation: B batch, H heads, Tq queries, Tk keys; positions are absolute (past tokens included).
import type { Tensor } from '../tensor/tensor.js';
import { add, tensor } from '../ops/index.js';
import type { AttentionOptions } from '../ops/nn.js';
import { Rng } from '../tensor/random.js';
import type { AttentionWindow } from './config.js';

export interface MaskSpec {
  causal: boolean;
  window: AttentionWindow;
  /** [B, Ttotal] 1 = real token, 0 = padding, over every position so far (past + new), or null */
  padding: Tensor | null;
}

/** Keys visible to query position qp under a sparse window (the causal part is left to the op).
 * `total`: positions in the sequence (BigBird draws a bidirectional query block's random blocks from all
 * of them; causal blocks draw from earlier blocks only, so caching reproduces the pattern). */
export function windowVisible(
  w: AttentionWindow,
  causal: boolean,
  qp: number,
  kp: number,
  total = Math.max(qp, kp) + 1,
): boolean {
  const d = qp - kp;
  const near = (limit: number) => (causal ? d >= 0 && d < limit : Math.abs(d) <= Math.floor(limit / 2));
  switch (w.kind) {
    case 'full':
      return true;
    case 'sliding':
    case 'alternating-band': // resolved per layer by layerWindow; unresolved, the band applies
      return near(w.size);
    case 'dilated':
      return d % w.dilation === 0 && near(w.size * w.dilation - (w.dilation - 1));
    case 'longformer':
      return near(w.size) || kp < w.globalTokens || qp < w.globalTokens;
    case 'bigbird': {
      const [bq, bk] = [Math.floor(qp / w.blockSize), Math.floor(kp / w.blockSize)];
      const local = Math.abs(bq - bk) <= Math.floor(w.windowBlocks / 2);
      return (
        local ||
        bk < w.globalBlocks ||
        bq < w.globalBlocks ||
        bigbirdRandom(w, bq, causal ? bq : Math.ceil(total / w.blockSize)).has(bk)
      );
    }
    default:
      return w satisfies never;
  }
}

/** BigBird's random blocks of query block bq: `randomBlocks` of blocks 0..poolSize-1, seeded per block */
const randomCache = new Map<string, Set<number>>();
function bigbirdRandom(w: Extract<AttentionWindow, { kind: 'bigbird' }>, bq: number, poolSize: number): Set<number> {
  const key = `${w.seed}:${w.randomBlocks}:${bq}:${poolSize}`;
  let s = randomCache.get(key);
  if (s) return s;
  const pool = Array.from({ length: poolSize }, (_, i) => i);
  s = new Set(new Rng(w.seed * 1000003 + bq).shuffle(pool).slice(0, w.randomBlocks));
  if (randomCache.size < 4096) randomCache.set(key, s);
  return s;
}

/** [1, 1, Tq, Tk] bias with -inf where the window hides a key */
export function windowBias(
  w: AttentionWindow,
  causal: boolean,
  qStart: number,
  Tq: number,
  kStart: number,
  Tk: number,
): Tensor {
  const out = new Float32Array(Tq * Tk);
  const total = Math.max(qStart + Tq, kStart + Tk);
  for (let i = 0; i < Tq; i++)
    for (let j = 0; j < Tk; j++)
      out[i * Tk + j] = windowVisible(w, causal, qStart + i, kStart + j, total) ? 0 : -Infinity;
  return tensor(out, { shape: [1, 1, Tq, Tk] });
}

/** the last Tk columns of a [B, Ttotal] padding mask, on the host */
function paddingRows(padding: Tensor, Tk: number): { B: number; rows: Float32Array } {
  const [B, Tt] = padding.shape as [number, number];
  if (padding.ndim !== 2 || Tt < Tk)
    throw new Error(`attention mask: expected [B, >=${Tk}] (past + new tokens), got [${padding.shape.join(', ')}]`);
  const vals = padding.data();
  const rows = new Float32Array(B * Tk);
  for (let b = 0; b < B; b++) for (let j = 0; j < Tk; j++) rows[b * Tk + j] = Number(vals[b * Tt + Tt - Tk + j]);
  return { B, rows };
}

/** key padding as kvLen (every row a prefix of ones) or as a [B, 1, 1, Tk] -inf bias */
function paddingOptions(padding: Tensor, Tk: number): { kvLen: Tensor | null; bias: Tensor | null } {
  const { B, rows } = paddingRows(padding, Tk);
  const lens = new Int32Array(B);
  let prefix = true;
  for (let b = 0; b < B; b++) {
    let n = 0;
    while (n < Tk && rows[b * Tk + n] !== 0) n++;
    for (let j = n; j < Tk; j++) if (rows[b * Tk + j] !== 0) prefix = false;
    lens[b] = n;
  }
  if (lens.every((n) => n === Tk)) return { kvLen: null, bias: null };
  if (prefix) return { kvLen: tensor(lens), bias: null };
  const bias = rows.map((v) => (v === 0 ? -Infinity : 0));
  return { kvLen: null, bias: tensor(bias, { shape: [B, 1, 1, Tk] }) };
}

/**
 * Options for `attention` given queries at qStart..qStart+Tq-1 and keys at kStart..kStart+Tk-1.
 * `extraBias` (ALiBi, T5 relative buckets, ...) is added to the mask bias.
 */
export function attentionOptions(
  spec: MaskSpec,
  qStart: number,
  Tq: number,
  kStart: number,
  Tk: number,
  extraBias: Tensor | null = null,
): AttentionOptions {
  const opts: AttentionOptions = { causal: spec.causal };
  let bias = extraBias;
  const aligned = kStart + Tk === qStart + Tq; // keys end with the queries (self-attention)
  const w = spec.window;
  if (w.kind === 'sliding' && spec.causal && aligned) opts.window = w.size;
  else if (w.kind !== 'full') bias = addBias(bias, windowBias(w, spec.causal, qStart, Tq, kStart, Tk));
  if (spec.padding) {
    const p = paddingOptions(spec.padding, Tk);
    opts.kvLen = p.kvLen;
    bias = addBias(bias, p.bias);
  }
  opts.bias = bias;
  return opts;
}

function addBias(a: Tensor | null, b: Tensor | null): Tensor | null {
  return a && b ? add(a, b) : (a ?? b);
}
