// The shape of the compiled addon (native/addon.cc) as seen from TypeScript. Addresses are plain
// numbers: user-space pointers on 64-bit hosts stay below 2^47, well inside a double's 2^53.
// This file only declares types, so the backend class stays importable in browsers; the Node
// loader (addon-node.ts) is what actually requires the .node file.

export interface NativeInfo {
  /** kernels in use: 'avx512' | 'avx2' | 'portable' */
  target: string;
  threads: number;
  avx2: boolean;
  fma: boolean;
  avx512f: boolean;
  avx512vnni: boolean;
  avx512bf16: boolean;
  f16c: boolean;
  /** the quantized GEMV runs the AVX-512 VNNI build (vpdpbusd) */
  quantVnni: boolean;
  /**
   * the test-only build (scripts/build-native-emu.mjs) whose avx512 target is the same source compiled for AVX2,
   * with SIMDe's vpdpbusd: it reports AVX-512 and VNNI wherever AVX2, FMA and F16C run. Never what npm install builds
   */
  emulated: boolean;
}

export interface NativeAddon {
  /** address of a new block, 64-byte aligned, zeroed when asked; any size (large blocks are mmap'd) */
  alloc(bytes: number, zero: boolean): number;
  /** an external ArrayBuffer over a block (zero-copy); Node limits one to 4 GiB */
  wrap(ptr: number, bytes: number): ArrayBuffer;
  /** detaches the ArrayBuffer if given (all its views become empty), then releases the memory */
  free(ptr: number, bytes: number, ab?: ArrayBuffer | null): void;
  /** bytes of freed large blocks kept for reuse (bounded by LINEAGE_NATIVE_CACHE_MB); absent in older builds */
  cachedBytes?(): number;
  /** unmaps every cached block; returns the bytes released */
  trimCache?(): number;
  /** memcpy from the address into the typed array (its whole length) */
  copyOut(ptr: number, dst: ArrayBufferView): void;
  /** memcpy from the typed array into the address */
  copyIn(ptr: number, src: ArrayBufferView): void;
  info(): NativeInfo;
  /** switch kernels ('avx512' | 'avx2' | 'portable'); throws when the CPU lacks the target */
  setTarget(name: string): string;
  setThreads(n: number): number;
  gemm(
    a: number,
    b: number,
    c: number,
    batch: number,
    M: number,
    N: number,
    K: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    nth: number,
  ): void;
  unary(op: number, x: number, out: number, n: number, nth: number): void;
  unaryBackward(op: number, x: number, y: number, dy: number, out: number, n: number, nth: number): void;
  binary(op: number, mode: number, a: number, b: number, out: number, n: number, rowLen: number, nth: number): void;
  softmax(x: number, out: number, rows: number, n: number, log: boolean, nth: number): void;
  softmaxBackward(y: number, dy: number, dx: number, rows: number, n: number, log: boolean, nth: number): void;
  norm(
    rms: boolean,
    x: number,
    w: number,
    b: number,
    out: number,
    mean: number,
    rstd: number,
    rows: number,
    n: number,
    eps: number,
    nth: number,
  ): void;
  normBackward(
    rms: boolean,
    x: number,
    w: number,
    mean: number,
    rstd: number,
    dy: number,
    dx: number,
    dw: number,
    db: number,
    rows: number,
    n: number,
    nth: number,
  ): void;
  crossEntropy(
    z: number,
    t: number,
    loss: number,
    lse: number,
    rows: number,
    V: number,
    ignore: number,
    eps: number,
    nth: number,
  ): void;
  crossEntropyBackward(
    z: number,
    t: number,
    lse: number,
    dloss: number,
    dz: number,
    rows: number,
    V: number,
    ignore: number,
    eps: number,
    nth: number,
  ): void;
  adamw(
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    wd: number,
    bc1: number,
    bc2: number,
    nth: number,
  ): void;
  /** q, k, v, B, H, Hkv, Tq, Tk, Dk, Dv, scale, causal, window, kvLen, bias, bias strides x4, out, lse, nth */
  attention(...args: (number | boolean)[]): void;
  /** attention's first 19 arguments, then out, lse, dout, dq, dk, dv, nth */
  attentionBackward(...args: (number | boolean)[]): void;
  /** op 0 sum, 1 max, 2 min over x [outer, n, inner] */
  reduce(op: number, x: number, out: number, outer: number, n: number, inner: number, nth: number): void;
  gather(x: number, idx: number, out: number, outer: number, n: number, inner: number, m: number, nth: number): void;
  scatterAdd(
    src: number,
    idx: number,
    out: number,
    outer: number,
    n: number,
    inner: number,
    m: number,
    nth: number,
  ): void;
  /** q, k, v, out, tables, seq, pos, T, H, Hkv, Dk, Dv, blockSize, S, maxBlocks, window, scale, nth */
  pagedAttention(...args: number[]): void;
  /** src [Hkv, T, D] float32 -> pool rows slots[t] * Hkv + h of kvType (0 f32, 1 f16, 2 bf16) */
  pagedWrite(
    src: number,
    slots: number,
    pool: number,
    T: number,
    Hkv: number,
    D: number,
    kvType: number,
    nth: number,
    scale?: number,
  ): void;
  /** x [T, H, D] -> out [H, T, D] with rotate_half RoPE on the first 2 * half dims */
  ropeHeads(x: number, cos: number, sin: number, out: number, T: number, H: number, D: number, half: number, nth: number): void;
  /** out [M, N] = x [M, K] @ dequant(W)^T; bits 8 = q8_0, 4 = q4_0 blocks at address w */
  quantMatmul(bits: number, x: number, w: number, out: number, M: number, N: number, K: number, nth: number): void;
  /** kind: 0 f32->f16, 1 f16->f32, 2 f32->bf16, 3 bf16->f32 (contiguous) */
  convert(kind: number, src: number, dst: number, n: number, nth: number): void;
  copyStrided(
    src: number,
    dst: number,
    elemBytes: number,
    shape: readonly number[],
    srcStrides: readonly number[],
    dstStrides: readonly number[],
    nth: number,
  ): void;
  /** fused elementwise chain (src/backend/native/fused.ts encodes the program); absent in older builds */
  fused?(
    code: Int32Array,
    consts: Float32Array,
    inputs: Float64Array,
    lens: Float64Array,
    out: number,
    n: number,
    nth: number,
  ): void;
}
