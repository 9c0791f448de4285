// Readable printing, PyTorch style, with elision of long dimensions.
import type { Tensor } from './tensor.js';

const EDGE = 3;
const MAX_FULL = 1000;

function fmtNum(x: number, dtype: string): string {
  if (dtype === 'int32') return String(x);
  if (dtype === 'bool') return x ? 'true' : 'false';
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-4 || a >= 1e6) ? x.toExponential(4) : x.toFixed(4);
}

export function formatTensor(t: Tensor): string {
  if (t.isDisposed) return `tensor(<disposed>, shape=[${t.shape.join(', ')}], dtype=${t.dtype})`;
  const flat = t.toList();
  const elide = flat.length > MAX_FULL;
  const strides = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((p, x) => p * x, 1));
  const rec = (d: number, off: number, indent: string): string => {
    if (d === t.ndim) return fmtNum(flat[off]!, t.dtype);
    const n = t.shape[d]!;
    const idx =
      elide && n > 2 * EDGE
        ? [...Array(EDGE).keys(), -1, ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)]
        : [...Array(n).keys()];
    const parts = idx.map((i) => (i < 0 ? '...' : rec(d + 1, off + i * strides[d]!, indent + ' ')));
    const sep = d === t.ndim - 1 ? ', ' : `,\n${indent} `;
    return `[${parts.join(sep)}]`;
  };
  const grad = t.requiresGrad ? ', requiresGrad' : '';
  return `tensor(${rec(0, 0, '       ')}, shape=[${t.shape.join(', ')}], dtype=${t.dtype}${grad})`;
}
