// Fused elementwise chains (src/backend/fused.ts, docs/FUSION.md): the program is interpreted per tile of
// FT elements; each node's tile lives in this thread's scratch, inputs are read in place (a repeated block
// too, unless it wraps inside the tile), scalars stay one value, and the last node writes the output.
// Node encoding (host: src/backend/wasm/fused.ts): 4 i32 per node [kind, op, a, b]; kind 0 input a,
// 1 const (consts[a]), 2 unary (op: elementwise.ts unary code) of node a, 3 binary (op: binary code) of a, b.
import { part } from './common';
import { binRange, expRange, unaryRange } from './elementwise';

const FT = 256;
const EXP = 2;

/** scratch bytes one thread needs for a program of `nodes` nodes */
export function fusedScratchBytes(nodes: i32): i32 {
  return nodes * (FT * 4 + 16);
}

/**
 * out[i] = program(inputs)[i] for i in [0, n): nodes at `code`, constants at `consts`, input addresses and
 * element counts (n, 1 or a divisor of n) at `ins` / `lens` (i32 each); thread tid takes a 16-aligned share.
 */
export function fused(
  tid: i32, nth: i32, nodes: i32, code: usize, consts: usize, ins: usize, lens: usize, out: usize, n: i32,
  scratch: usize, scratchPer: i32,
): void {
  const blocks = (n + 15) >> 4;
  const i0 = part(blocks, nth, tid) << 4;
  const i1 = min(n, part(blocks, nth, tid + 1) << 4);
  const base = scratch + <usize>tid * <usize>scratchPer;
  for (let lo = i0; lo < i1; lo += FT) fusedTile(nodes, code, consts, ins, lens, out, n, lo, min(FT, i1 - lo), base);
}

// per-thread scratch: [nodes tiles of FT floats][ptr u32 per node][scalar flag i32 per node][scalar f32 per node]
function fusedTile(
  nodes: i32, code: usize, consts: usize, ins: usize, lens: usize, out: usize, n: i32, lo: i32, m: i32, base: usize,
): void {
  const ptrs = base + <usize>nodes * FT * 4;
  const flags = ptrs + <usize>nodes * 4;
  const vals = flags + <usize>nodes * 4;
  const dst = out + (<usize>lo << 2);
  for (let k = 0; k < nodes; k++) {
    const c = code + (<usize>k << 4);
    const kind = load<i32>(c), op = load<i32>(c, 4), a = load<i32>(c, 8), b = load<i32>(c, 12);
    const tile = k == nodes - 1 ? dst : base + <usize>k * FT * 4;
    const slot = vals + (<usize>k << 2);
    let p: usize = tile;
    let scalar = false;
    if (kind == 0) {
      const src = <usize>load<u32>(ins + (<usize>a << 2));
      const r = load<i32>(lens + (<usize>a << 2));
      if (r == 1 && n != 1) {
        store<f32>(slot, load<f32>(src));
        scalar = true;
      } else if (r == n) p = src + (<usize>lo << 2);
      else p = rowTile(src, r, lo, m, base + <usize>k * FT * 4);
    } else if (kind == 1) {
      store<f32>(slot, load<f32>(consts + (<usize>a << 2)));
      scalar = true;
    } else if (kind == 2) {
      const x = nodeAt(ptrs, flags, vals, a);
      scalar = load<i32>(flags + (<usize>a << 2)) != 0;
      const d = scalar ? slot : tile;
      const len = scalar ? 1 : m;
      if (op == EXP) expRange(x, d, 0, len);
      else unaryRange(op, x, d, 0, len);
      p = d;
    } else {
      const sa = load<i32>(flags + (<usize>a << 2)) != 0, sb = load<i32>(flags + (<usize>b << 2)) != 0;
      scalar = sa && sb;
      const d = scalar ? slot : tile;
      // modes of binRange: 0 both full, 1 b scalar, 2 a scalar
      binRange(op, scalar ? 0 : sb ? 1 : sa ? 2 : 0, nodeAt(ptrs, flags, vals, a), nodeAt(ptrs, flags, vals, b), d, 0, scalar ? 1 : m);
      p = d;
    }
    store<u32>(ptrs + (<usize>k << 2), <u32>(scalar ? slot : p));
    store<i32>(flags + (<usize>k << 2), scalar ? 1 : 0);
  }
  finish(nodes, ptrs, flags, dst, m);
}

/** node k's values: its tile, or its scalar slot */
@inline function nodeAt(ptrs: usize, flags: usize, vals: usize, k: i32): usize {
  return <usize>load<u32>(ptrs + (<usize>k << 2));
}

/** a repeated block of r floats over [lo, lo + m): in place when it does not wrap, else copied into tile */
function rowTile(src: usize, r: i32, lo: i32, m: i32, tile: usize): usize {
  let c = lo % r;
  if (c + m <= r) return src + (<usize>c << 2);
  for (let j = 0; j < m; ) {
    const len = min(m - j, r - c);
    memory.copy(tile + (<usize>j << 2), src + (<usize>c << 2), <usize>len << 2);
    j += len;
    c = 0;
  }
  return tile;
}

/** the last node was an input, a constant or a scalar result: not yet in the output */
function finish(nodes: i32, ptrs: usize, flags: usize, dst: usize, m: i32): void {
  const last = nodes - 1;
  const p = <usize>load<u32>(ptrs + (<usize>last << 2));
  if (load<i32>(flags + (<usize>last << 2)) != 0) {
    const v = load<f32>(p);
    for (let i = 0; i < m; i++) store<f32>(dst + (<usize>i << 2), v);
  } else if (p != dst) memory.copy(dst, p, <usize>m << 2);
}
