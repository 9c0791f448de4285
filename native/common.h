// Shared declarations of the native backend: the thread pool every kernel uses and the table of
// kernels each CPU target (AVX-512, AVX2+FMA, portable) compiles from the same source.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lineage {

/** Runs fn(tid) for tid in [0, nth) on the pool (the caller is thread 0) and waits for all. */
void parallelRun(int nth, void (*fn)(void* ctx, int tid), void* ctx);
/** Threads in the pool including the caller. */
int poolThreads();
void setPoolThreads(int n);

template <class F>
inline void parallel(int nth, F&& f) {
  if (nth <= 1) {
    f(0);
    return;
  }
  parallelRun(nth, [](void* c, int tid) { (*static_cast<F*>(c))(tid); }, &f);
}

/** Splits [0, n) into nth near-equal parts; part tid is [*lo, *hi). */
inline void splitRange(int64_t n, int nth, int tid, int64_t* lo, int64_t* hi) {
  int64_t per = n / nth, rem = n % nth;
  *lo = tid * per + (tid < rem ? tid : rem);
  *hi = *lo + per + (tid < rem ? 1 : 0);
}

struct AttnArgs {
  const float *q, *k, *v;
  int64_t B, H, Hkv, Tq, Tk, Dk, Dv;
  float scale;
  int causal;
  int64_t window;
  const int32_t* kvLen;
  const float* bias;
  int64_t bs0, bs1, bs2, bs3;
};

/** paged attention (native/paged.inc): q [H, T, Dk], out [H, T, Dv], K pool [slots, Hkv, Dk], V pool
 * [slots, Hkv, Dv] (slot = block * bs + offset), tables [S, maxBlocks], seq / pos [T] */
struct PagedArgs {
  const float* q;
  const void *k, *v;  // elements of kvType
  float* out;
  const int32_t *tables, *seq, *pos;
  int64_t T, H, Hkv, Dk, Dv, bs, S, maxBlocks, window;
  float scale;
  int kvType = 0;  // K and V pools: 0 float32, 1 float16, 2 bfloat16, 3 int8 (with kScale / vScale)
  const float *kScale = nullptr, *vScale = nullptr;  // int8: one scale per pool row (slot, kv head)
};

/** fused elementwise chain (native/fused.inc): code holds [op, a, b] per node, validated by the addon */
constexpr int FUSED_MAX_NODES = 32;
constexpr int FUSED_MAX_INPUTS = 8;
struct FusedArgs {
  int nodes;
  const int32_t* code;
  const float* consts;
  const float* in[FUSED_MAX_INPUTS];
  int64_t inLen[FUSED_MAX_INPUTS];  // n (elementwise), 1 (scalar) or R dividing n (trailing block repeated)
  float* out;
  int64_t n;
};

struct Kernels {
  const char* name;
  void (*gemm)(const float* A, const float* B, float* C, int64_t batch, int64_t M, int64_t N, int64_t K, bool transA,
               bool transB, int64_t strideA, int64_t strideB, int nth);
  void (*unary)(int op, const float* x, float* out, int64_t n, int nth);
  void (*unaryBackward)(int op, const float* x, const float* y, const float* dy, float* out, int64_t n, int nth);
  void (*binary)(int op, int mode, const float* a, const float* b, float* out, int64_t n, int64_t rowLen, int nth);
  void (*softmax)(const float* x, float* out, int64_t rows, int64_t n, bool log, int nth);
  void (*softmaxBackward)(const float* y, const float* dy, float* dx, int64_t rows, int64_t n, bool log, int nth);
  void (*norm)(bool rms, const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, int64_t rows,
               int64_t n, float eps, int nth);
  void (*normBackward)(bool rms, const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                       float* dx, float* dw, float* db, int64_t rows, int64_t n, int nth);
  void (*crossEntropy)(const float* z, const int32_t* t, float* loss, float* lse, int64_t rows, int64_t V, int64_t ignore,
                       float eps, int nth);
  void (*crossEntropyBackward)(const float* z, const int32_t* t, const float* lse, const float* dloss, float* dz,
                               int64_t rows, int64_t V, int64_t ignore, float eps, int nth);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps, float wd,
                float bc1, float bc2, int nth);
  void (*attention)(const AttnArgs& a, float* out, float* lse, int nth);
  void (*attentionBackward)(const AttnArgs& a, const float* out, const float* lse, const float* dout, float* dq, float* dk,
                            float* dv, int nth);
  void (*reduce)(int op, const float* x, float* out, int64_t outer, int64_t n, int64_t inner, int nth);
  void (*gather)(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t n, int64_t inner, int64_t m, int nth);
  void (*scatterAdd)(const float* src, const int32_t* idx, float* out, int64_t outer, int64_t n, int64_t inner, int64_t m,
                     int nth);
  void (*pagedAttention)(const PagedArgs& a, int nth);
  /** the step's new keys or values, src [Hkv, T, D] float32, into pool rows [slots[t] * Hkv + h] of kvType
   * (float16 saturating finite overflow to +-65504, bfloat16; both round to nearest even; int8 with the row's
   * scale into scale[row]) */
  void (*pagedWrite)(const float* src, const int32_t* slots, void* pool, int64_t T, int64_t Hkv, int64_t D, int kvType,
                     float* scale, int nth);
  /** x [T, H, D] -> out [H, T, D] with rotate_half RoPE on the first 2 * half dims (cos / sin [T, half]) */
  void (*ropeHeads)(const float* x, const float* cos, const float* sin, float* out, int64_t T, int64_t H, int64_t D,
                    int64_t half, int nth);
  /** x [M, K] @ dequant(W [N, K] in q8_0 / q4_0 blocks)^T -> out [M, N] (native/quant.inc) */
  void (*quantMatmul)(int bits, const float* x, const uint8_t* w, float* out, int64_t M, int64_t N, int64_t K, int nth);
  /** the same with AVX-512 VNNI (null where the target has no VNNI build; the addon checks cpuid) */
  void (*quantMatmulVnni)(int bits, const float* x, const uint8_t* w, float* out, int64_t M, int64_t N, int64_t K, int nth);
  void (*fused)(const FusedArgs& a, int nth);
};

const Kernels* kernelsPortable();
#if defined(__x86_64__) || defined(_M_X64)
const Kernels* kernelsAvx2();
const Kernels* kernelsAvx512();
#endif

}  // namespace lineage
