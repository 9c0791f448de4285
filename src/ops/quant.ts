// Weight-only quantization ops: GGUF q8_0 / q4_0 blocks (src/backend/reference/quant.ts) held in an int32
// tensor of raw words, and `quantizedLinear`, the Linear layer's product with W dequantized on the fly by the
// kernel (no float32 copy of W is kept). Activations stay float32; only the input gets a gradient.
import type { QuantMatmulParams } from '../backend/backend.js';
import {
  QUANT_BLOCK,
  dequantizeRows,
  quantRowBytes,
  quantizeRows,
  type QuantBits,
} from '../backend/reference/quant.js';
import { noGrad } from '../tensor/engine.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { allocOut, checkDType, contig, kernel, narrow, record, sameBackend, widened } from './core.js';
import { tensor } from './creation.js';
import { add } from './elementwise.js';
import { matmul } from './linalg.js';
import { reshape } from './movement.js';

export type { QuantBits } from '../backend/reference/quant.js';

/** a [N, K] weight (out, in) as GGUF blocks; `packed` is an int32 tensor of the raw little-endian words */
export interface QuantizedWeight {
  packed: Tensor;
  bits: QuantBits;
  /** N */
  outFeatures: number;
  /** K, a multiple of 32 */
  inFeatures: number;
}

export function checkQuantBits(bits: unknown, what = 'bits'): QuantBits {
  if (bits !== 4 && bits !== 8)
    throw new Error(`quantization: ${what} must be 8 (q8_0) or 4 (q4_0), got ${JSON.stringify(bits)}`);
  return bits;
}

/** wraps the bytes of N * K/32 blocks (e.g. from a file) as a QuantizedWeight */
export function packedWeight(
  bytes: Uint8Array,
  outFeatures: number,
  inFeatures: number,
  bits: QuantBits,
): QuantizedWeight {
  const need = outFeatures * quantRowBytes(inFeatures, bits);
  if (bytes.length !== need) {
    throw new Error(
      `quantization: [${outFeatures}, ${inFeatures}] q${bits} needs ${need} bytes of blocks, got ${bytes.length}`,
    );
  }
  const words = new Int32Array(Math.ceil(need / 4)); // the tail word is zero-padded
  new Uint8Array(words.buffer).set(bytes);
  return { packed: tensor(words, { shape: [words.length], dtype: 'int32' }), bits, outFeatures, inFeatures };
}

/** the blocks as bytes, exactly as GGUF stores the tensor */
export function weightBytes(q: QuantizedWeight): Uint8Array {
  const words = q.packed.data() as Int32Array;
  return new Uint8Array(words.buffer, words.byteOffset, q.outFeatures * quantRowBytes(q.inFeatures, q.bits)).slice();
}

/** w [N, K] (any float dtype) -> blocks; K must be a multiple of 32 */
export function quantizeWeight(w: Tensor, bits: QuantBits): QuantizedWeight {
  checkQuantBits(bits);
  checkDType('quantizeWeight', 'w', w, ['float32', 'float16', 'bfloat16']);
  if (w.ndim !== 2) throw new Error(`quantizeWeight: expected a [out, in] matrix, got shape ${fmt(w.shape)}`);
  const [N, K] = w.shape as [number, number];
  if (K % QUANT_BLOCK !== 0)
    throw new Error(`quantizeWeight: in_features ${K} is not a multiple of ${QUANT_BLOCK} (shape ${fmt(w.shape)})`);
  const values = noGrad(() => widened(w, (w32) => w32.data() as Float32Array));
  return packedWeight(quantizeRows(values, N, K, bits), N, K, bits);
}

/** the float32 matrix the blocks stand for, [N, K] (tests, exports; the forward pass never makes it) */
export function dequantizeWeight(q: QuantizedWeight): Tensor {
  const w = dequantizeRows(weightBytes(q), q.outFeatures, q.inFeatures, q.bits);
  return tensor(w, { shape: [q.outFeatures, q.inFeatures] });
}

/**
 * y = x @ dequant(W)^T (+ bias), x [..., K] -> [..., N]. float16/bfloat16 inputs are widened for the kernel
 * and the result stored back in their dtype. Backward gives x its gradient (W is frozen) through a
 * dequantized copy of W that exists only during the backward call.
 */
export function quantizedLinear(x: Tensor, q: QuantizedWeight, bias?: Tensor | null): Tensor {
  sameBackend('quantizedLinear', x, q.packed, bias);
  checkDType('quantizedLinear', 'x', x, ['float32', 'float16', 'bfloat16']);
  const K = q.inFeatures;
  const N = q.outFeatures;
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== K) {
    throw new Error(
      `quantizedLinear: input ${fmt(x.shape)} does not match the quantized weight [${N}, ${K}] (expected last dim ${K})`,
    );
  }
  const lead = x.shape.slice(0, -1);
  const lowp = x.dtype === 'float32' ? null : x.dtype;
  const x2 = reshape(x, [-1, K]); // (M, K)
  const M = x2.shape[0]!;
  const y32 = noGrad(() =>
    widened(x2, (x32) => {
      const xc = contig(x32);
      const out = allocOut([M, N], 'float32', x); // (M, N)
      const p: QuantMatmulParams = { M, N, K, bits: q.bits };
      if (M > 0 && N > 0) kernel(x, 'quantMatmul')(xc.view(), q.packed.view(), out.view(), p);
      if (xc !== x32) xc.dispose();
      return out;
    }),
  );
  let y = record(narrow(y32, lowp), 'quantizedLinear', [x2], (g) => {
    const w = dequantizeWeight(q); // (N, K), freed at once
    try {
      return [widened(g, (g32) => narrow(matmul(g32, w), lowp))];
    } finally {
      w.dispose();
    }
  });
  if (bias) y = add(y, bias);
  return reshape(y, [...lead, N]);
}
