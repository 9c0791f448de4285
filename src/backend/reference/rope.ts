// Reference ropeHeads (the kernel contract's): token-major rows to head-major with rotate_half RoPE, each
// product rounded to float32 before the sum (the rounding of the rope op in src/nn/positions.ts).
import type { RopeHeadsParams, View } from '../backend.js';

const host = (v: View) => (v.buf.backend.view(v.buf) ?? v.buf.backend.read(v.buf)) as Float32Array;

export function ropeHeads(x: View, cos: View, sin: View, out: View, p: RopeHeadsParams): void {
  const { T, H, D, half } = p;
  const [xa, ca, sa] = [host(x), host(cos), host(sin)];
  const res = new Float32Array(H * T * D);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++) {
      const [src, o, cs] = [x.offset + (t * H + h) * D, (h * T + t) * D, t * half];
      for (let i = 0; i < half; i++) {
        const [c, s] = [ca[cos.offset + cs + i]!, sa[sin.offset + cs + i]!];
        const [x1, x2] = [xa[src + i]!, xa[src + half + i]!];
        res[o + i] = Math.fround(x1 * c) - Math.fround(x2 * s);
        res[o + half + i] = Math.fround(x2 * c) + Math.fround(x1 * s);
      }
      for (let d = 2 * half; d < D; d++) res[o + d] = xa[src + d]!;
    }
  out.buf.backend.write(out.buf, res, out.offset);
}
