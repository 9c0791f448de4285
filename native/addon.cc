// The N-API surface of the native backend: aligned memory exposed to JS as external ArrayBuffers
// (zero-copy views), CPU feature detection and kernel-table dispatch, the thread pool size, and
// one function per kernel taking raw addresses (JS numbers; user-space addresses fit in 2^53).
#include <napi.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

using namespace lineage;

namespace {

struct Features {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, f16c = false;
};

Features detect() {
  Features f;
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (!osxsave) return f;
  // the OS must save the wide registers: XCR0 bits 1-2 (SSE/AVX state), 5-7 (AVX-512 state)
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  bool ymm = (lo & 6) == 6, zmm = (lo & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = ymm && (b & (1u << 5));
  f.avx512f = zmm && (b & (1u << 16));
  f.avx512dq = zmm && (b & (1u << 17));
  f.avx512bw = zmm && (b & (1u << 30));
  f.avx512vl = zmm && (b & (1u << 31));
  f.avx512vnni = zmm && (c & (1u << 11));
  unsigned a1, b1, c1, d1;
  if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = zmm && (a1 & (1u << 5));
  if (!f.fma) f.avx2 = false;
#endif
#if defined(LINEAGE_EMULATE_AVX512)
  // the emulated build (tests only, scripts/build-native-emu.mjs): its avx512 target is AVX2 + FMA + F16C code
  // with SIMDe's vpdpbusd, so it runs wherever those do
  bool emu = f.avx2 && f.fma && f.f16c;
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512vnni = emu;
#endif
  return f;
}

const Features& features() {
  static Features f = detect();
  return f;
}

/** best target the CPU runs, or the one named (LINEAGE_NATIVE_TARGET / setTarget) when the CPU has it */
const Kernels* pick(const std::string& want) {
#if defined(__x86_64__) || defined(_M_X64)
  const Features& f = features();
  bool has512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma;
  if (want == "portable") return kernelsPortable();
  if (want == "avx2") return f.avx2 ? kernelsAvx2() : nullptr;
  if (want == "avx512") return has512 ? kernelsAvx512() : nullptr;
  if (has512) return kernelsAvx512();
  if (f.avx2) return kernelsAvx2();
  return kernelsPortable();
#else
  if (want.empty() || want == "portable") return kernelsPortable();
  return nullptr;
#endif
}

const Kernels* K = nullptr;

inline int64_t I(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }
inline double D(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
inline bool Bo(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }
template <class T = float>
inline T* P(const Napi::CallbackInfo& info, size_t i) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(info[i].As<Napi::Number>().Int64Value()));
}

// ---- memory ----------------------------------------------------------------------------------------
// blocks from this size on are mapped (below: aligned_alloc); 256 KiB so that the smaller weight matrices of
// a decoding model (a 512 x 256 key / value projection is 512 KiB) also land on huge pages (below)
constexpr size_t MMAP_MIN = size_t(256) << 10;

// Large blocks come from mmap. Freed ones are kept for reuse, by size class, instead of going back to the OS
// at once: a training step frees and allocates the same activation sizes every step, and fresh mmap pages
// fault on first touch. Measured (perf stat, 200 steps of shakespeare-char-cpu, 1 thread): 3.07 million page
// faults without this cache, against PyTorch's 60 thousand for the same run. The cache is bounded
// (LINEAGE_NATIVE_CACHE_MB, default 512): past the bound a freed block is unmapped as before. Alloc and free
// may come from several JS threads (engine workers load the addon too), hence the lock.
std::mutex block_cache_mu;
std::unordered_map<size_t, std::vector<void*>> block_cache;  // class bytes -> free blocks
size_t block_cache_bytes = 0;

size_t blockCacheLimit() {
  static const size_t limit = [] {
    const char* e = std::getenv("LINEAGE_NATIVE_CACHE_MB");
    long mb = e ? std::strtol(e, nullptr, 10) : 512;
    return static_cast<size_t>(mb < 0 ? 0 : mb) << 20;
  }();
  return limit;
}

/** the mapped size for a request: 8 classes per power of two (at most 12.5% over), whole pages */
size_t sizeClass(size_t bytes) {
  size_t top = size_t(1) << (63 - __builtin_clzll(bytes));
  size_t step = std::max<size_t>(4096, top / 8);
  return (bytes + step - 1) / step * step;
}

// Fresh large blocks are carved from 2 MiB-aligned regions marked MADV_HUGEPAGE (transparent huge pages,
// where the kernel has them in "madvise" or "always" mode), one after another, so that weights of a few MiB
// each, as decoding streams them, sit on 2 MiB pages instead of 4 KiB ones: 512 times fewer TLB entries and
// page walks (nested ones under a hypervisor) over the ~100 MB read per decoded token. Measured (the
// GEMV over the 96 MB of the llama.cpp decode benchmark's weights, AVX2, 1 thread): ~12% faster than on
// 4 KiB pages. A region is reserved ahead (address space only: pages are mapped on first touch) and
// handed out in order; blocks of a quarter of a region or more get their own aligned mapping. A block
// is released with munmap as before (the kernel splits a huge page it cuts through), and its address
// range is never handed out again. LINEAGE_NATIVE_HUGEPAGES=0 maps plain 4 KiB pages.
constexpr size_t HUGE_PAGE = size_t(2) << 20;
constexpr size_t REGION = size_t(64) << 20;
char* region_next = nullptr;  // the free rest of the current region, under block_cache_mu
char* region_end = nullptr;

bool hugePagesWanted() {
  static const bool on = [] {
    const char* e = std::getenv("LINEAGE_NATIVE_HUGEPAGES");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

/** bytes (whole pages) of fresh zero memory, HUGE_PAGE-aligned, marked for huge pages; null when out of memory */
char* mapAligned(size_t bytes) {
  size_t span = bytes + HUGE_PAGE;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  char* r = static_cast<char*>(raw);
  char* p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(r) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
  if (p > r) munmap(r, p - r);  // the unaligned head and tail go back
  if (r + span > p + bytes) munmap(p + bytes, r + span - (p + bytes));
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without THP support it changes nothing
#endif
  return p;
}

/** a fresh block of cls bytes (a whole number of pages), zero; caller holds block_cache_mu */
void* carveBlock(size_t cls) {
  if (!hugePagesWanted()) {
    void* p = mmap(nullptr, cls, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  if (cls >= REGION / 4) return mapAligned(cls);
  if (static_cast<size_t>(region_end - region_next) < cls) {
    if (region_next) munmap(region_next, region_end - region_next);  // the unused rest of the old region
    region_next = region_end = nullptr;
    char* r = mapAligned(REGION);
    if (!r) return nullptr;
    region_next = r;
    region_end = r + REGION;
  }
  void* p = region_next;
  region_next += cls;
  return p;
}

void* mapBlock(size_t bytes, bool zero) {
  size_t cls = sizeClass(bytes);
  std::lock_guard<std::mutex> g(block_cache_mu);
  auto it = block_cache.find(cls);
  if (it != block_cache.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    block_cache_bytes -= cls;
    if (zero) std::memset(p, 0, bytes);
    return p;
  }
  return carveBlock(cls);  // fresh pages are zero
}

void unmapBlock(void* p, size_t bytes) {
  size_t cls = sizeClass(bytes);
  {
    std::lock_guard<std::mutex> g(block_cache_mu);
    if (block_cache_bytes + cls <= blockCacheLimit()) {
      block_cache[cls].push_back(p);
      block_cache_bytes += cls;
      return;
    }
  }
  munmap(p, cls);
}

/** alloc(bytes, zero) -> address: 64-byte aligned; large blocks from mmap (through the reuse cache above) */
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double req = D(info, 0);
  bool zero = Bo(info, 1);
  if (!(req >= 0) || req > 1.0 * (size_t(1) << 46)) {
    throw Napi::RangeError::New(env, "native.alloc: invalid size " + std::to_string(req));
  }
  size_t bytes = (static_cast<size_t>(req) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* p;
  if (bytes >= MMAP_MIN) {
    p = mapBlock(bytes, zero);
  } else {
    p = std::aligned_alloc(64, bytes);
    if (p && zero) std::memset(p, 0, bytes);
  }
  if (!p) throw Napi::Error::New(env, "native.alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

/** trimCache() -> bytes released: unmaps every cached block (memory back to the OS) */
Napi::Value TrimCache(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> g(block_cache_mu);
  size_t released = block_cache_bytes;
  for (auto& [cls, blocks] : block_cache)
    for (void* p : blocks) munmap(p, cls);
  block_cache.clear();
  block_cache_bytes = 0;
  return Napi::Number::New(info.Env(), static_cast<double>(released));
}

/** cachedBytes() -> bytes held by the reuse cache */
Napi::Value CachedBytes(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> g(block_cache_mu);
  return Napi::Number::New(info.Env(), static_cast<double>(block_cache_bytes));
}

/**
 * wrap(address, bytes) -> external ArrayBuffer over the block (zero-copy views). Node caps one at 4 GiB, so
 * larger blocks are reached through copyIn / copyOut and kernels only. The finalizer does nothing: memory is
 * released by free(), which detaches the ArrayBuffer first. (A raw N-API call: node-addon-api's finalizer
 * wrapper keeps a heap record that a detach followed by GC would release twice.)
 */
Napi::Value Wrap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t bytes = static_cast<size_t>(D(info, 1));
  if (bytes > (size_t(1) << 32)) throw Napi::RangeError::New(env, "native.wrap: a JS view is limited to 4 GiB");
  napi_value raw;
  napi_status s = napi_create_external_arraybuffer(env, P<void>(info, 0), bytes, [](napi_env, void*, void*) {}, nullptr, &raw);
  if (s != napi_ok) throw Napi::Error::New(env, "native.wrap: cannot create an external ArrayBuffer");
  return Napi::Value(env, raw);
}

/** free(address, bytes, arrayBuffer?): detaches the ArrayBuffer (every view of it becomes empty), then releases */
Napi::Value Free(const Napi::CallbackInfo& info) {
  void* p = P<void>(info, 0);
  size_t req = static_cast<size_t>(D(info, 1));
  if (info.Length() > 2 && info[2].IsArrayBuffer()) {
    Napi::ArrayBuffer ab = info[2].As<Napi::ArrayBuffer>();
    if (!ab.IsDetached()) ab.Detach();
  }
  size_t bytes = (req + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  if (bytes >= MMAP_MIN) unmapBlock(p, bytes);
  else std::free(p);
  return info.Env().Undefined();
}

/** copyOut(address, typedArray) / copyIn(address, typedArray): memcpy between native memory and a JS array */
Napi::Value CopyOut(const Napi::CallbackInfo& info) {
  Napi::TypedArray t = info[1].As<Napi::TypedArray>();
  char* dst = static_cast<char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  std::memcpy(dst, P<void>(info, 0), t.ByteLength());
  return info.Env().Undefined();
}
Napi::Value CopyIn(const Napi::CallbackInfo& info) {
  Napi::TypedArray t = info[1].As<Napi::TypedArray>();
  const char* src = static_cast<const char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  std::memcpy(P<void>(info, 0), src, t.ByteLength());
  return info.Env().Undefined();
}

// ---- configuration ---------------------------------------------------------------------------------
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Features& f = features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("target", K->name);
  o.Set("threads", poolThreads());
  o.Set("avx2", f.avx2);
  o.Set("fma", f.fma);
  o.Set("avx512f", f.avx512f);
  o.Set("avx512vnni", f.avx512vnni);
  o.Set("avx512bf16", f.avx512bf16);
  o.Set("quantVnni", K->quantMatmulVnni != nullptr && f.avx512vnni);
  o.Set("f16c", f.f16c);
#if defined(LINEAGE_EMULATE_AVX512)
  o.Set("emulated", true);
#else
  o.Set("emulated", false);
#endif
  return o;
}

Napi::Value SetTarget(const Napi::CallbackInfo& info) {
  std::string want = info[0].As<Napi::String>();
  const Kernels* k = pick(want);
  if (!k) throw Napi::Error::New(info.Env(), "native: this CPU cannot run the '" + want + "' kernels");
  K = k;
  return Napi::String::New(info.Env(), K->name);
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  setPoolThreads(static_cast<int>(I(info, 0)));
  return Napi::Number::New(info.Env(), poolThreads());
}

// ---- kernels ---------------------------------------------------------------------------------------
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  K->gemm(P(info, 0), P(info, 1), P(info, 2), I(info, 3), I(info, 4), I(info, 5), I(info, 6), Bo(info, 7), Bo(info, 8),
          I(info, 9), I(info, 10), static_cast<int>(I(info, 11)));
  return info.Env().Undefined();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  K->unary(static_cast<int>(I(info, 0)), P(info, 1), P(info, 2), I(info, 3), static_cast<int>(I(info, 4)));
  return info.Env().Undefined();
}

Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  K->unaryBackward(static_cast<int>(I(info, 0)), P(info, 1), P(info, 2), P(info, 3), P(info, 4), I(info, 5),
                   static_cast<int>(I(info, 6)));
  return info.Env().Undefined();
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  K->binary(static_cast<int>(I(info, 0)), static_cast<int>(I(info, 1)), P(info, 2), P(info, 3), P(info, 4), I(info, 5),
            I(info, 6), static_cast<int>(I(info, 7)));
  return info.Env().Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  K->softmax(P(info, 0), P(info, 1), I(info, 2), I(info, 3), Bo(info, 4), static_cast<int>(I(info, 5)));
  return info.Env().Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  K->softmaxBackward(P(info, 0), P(info, 1), P(info, 2), I(info, 3), I(info, 4), Bo(info, 5), static_cast<int>(I(info, 6)));
  return info.Env().Undefined();
}

/** norm(rms, x, w|0, b|0, out, mean|0, rstd, rows, n, eps, nth) */
Napi::Value Norm(const Napi::CallbackInfo& info) {
  K->norm(Bo(info, 0), P(info, 1), P(info, 2), P(info, 3), P(info, 4), P(info, 5), P(info, 6), I(info, 7), I(info, 8),
          static_cast<float>(D(info, 9)), static_cast<int>(I(info, 10)));
  return info.Env().Undefined();
}

/** normBackward(rms, x, w|0, mean|0, rstd, dy, dx, dw|0, db|0, rows, n, nth) */
Napi::Value NormBackward(const Napi::CallbackInfo& info) {
  K->normBackward(Bo(info, 0), P(info, 1), P(info, 2), P(info, 3), P(info, 4), P(info, 5), P(info, 6), P(info, 7), P(info, 8),
                  I(info, 9), I(info, 10), static_cast<int>(I(info, 11)));
  return info.Env().Undefined();
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  K->crossEntropy(P(info, 0), P<int32_t>(info, 1), P(info, 2), P(info, 3), I(info, 4), I(info, 5), I(info, 6),
                  static_cast<float>(D(info, 7)), static_cast<int>(I(info, 8)));
  return info.Env().Undefined();
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  K->crossEntropyBackward(P(info, 0), P<int32_t>(info, 1), P(info, 2), P(info, 3), P(info, 4), I(info, 5), I(info, 6),
                          I(info, 7), static_cast<float>(D(info, 8)), static_cast<int>(I(info, 9)));
  return info.Env().Undefined();
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  auto f = [&](size_t i) { return static_cast<float>(D(info, i)); };
  K->adamw(P(info, 0), P(info, 1), P(info, 2), P(info, 3), I(info, 4), f(5), f(6), f(7), f(8), f(9), f(10), f(11),
           static_cast<int>(I(info, 12)));
  return info.Env().Undefined();
}

/** q, k, v, B, H, Hkv, Tq, Tk, Dk, Dv, scale, causal, window, kvLen|0, bias|0, bs0..bs3 (args 0-18) */
AttnArgs attnArgs(const Napi::CallbackInfo& info) {
  AttnArgs a;
  a.q = P(info, 0);
  a.k = P(info, 1);
  a.v = P(info, 2);
  a.B = I(info, 3);
  a.H = I(info, 4);
  a.Hkv = I(info, 5);
  a.Tq = I(info, 6);
  a.Tk = I(info, 7);
  a.Dk = I(info, 8);
  a.Dv = I(info, 9);
  a.scale = static_cast<float>(D(info, 10));
  a.causal = Bo(info, 11) ? 1 : 0;
  a.window = I(info, 12);
  a.kvLen = P<int32_t>(info, 13);
  a.bias = P(info, 14);
  a.bs0 = I(info, 15);
  a.bs1 = I(info, 16);
  a.bs2 = I(info, 17);
  a.bs3 = I(info, 18);
  return a;
}

/** attention(...attnArgs, out, lse, nth) */
Napi::Value Attention(const Napi::CallbackInfo& info) {
  AttnArgs a = attnArgs(info);
  K->attention(a, P(info, 19), P(info, 20), static_cast<int>(I(info, 21)));
  return info.Env().Undefined();
}

/** attentionBackward(...attnArgs, out, lse, dout, dq, dk, dv, nth) */
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  AttnArgs a = attnArgs(info);
  K->attentionBackward(a, P(info, 19), P(info, 20), P(info, 21), P(info, 22), P(info, 23), P(info, 24),
                       static_cast<int>(I(info, 25)));
  return info.Env().Undefined();
}

/** reduce(op, x, out, outer, n, inner, nth) */
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  K->reduce(static_cast<int>(I(info, 0)), P(info, 1), P(info, 2), I(info, 3), I(info, 4), I(info, 5), static_cast<int>(I(info, 6)));
  return info.Env().Undefined();
}

/** gather(x, idx, out, outer, n, inner, m, nth) and scatterAdd(src, idx, out, outer, n, inner, m, nth) */
Napi::Value Gather(const Napi::CallbackInfo& info) {
  K->gather(P(info, 0), P<int32_t>(info, 1), P(info, 2), I(info, 3), I(info, 4), I(info, 5), I(info, 6),
            static_cast<int>(I(info, 7)));
  return info.Env().Undefined();
}
Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  K->scatterAdd(P(info, 0), P<int32_t>(info, 1), P(info, 2), I(info, 3), I(info, 4), I(info, 5), I(info, 6),
                static_cast<int>(I(info, 7)));
  return info.Env().Undefined();
}

/** pagedAttention(q, k, v, out, tables, seq, pos, T, H, Hkv, Dk, Dv, bs, S, maxBlocks, window, scale, nth[, kvType[,
 * kScale, vScale]]): the scales (float32, one per pool row) with kvType 3 (int8) only */
Napi::Value PagedAttention(const Napi::CallbackInfo& info) {
  PagedArgs a;
  a.q = P(info, 0);
  a.k = P(info, 1);
  a.v = P(info, 2);
  a.out = P(info, 3);
  a.tables = P<int32_t>(info, 4);
  a.seq = P<int32_t>(info, 5);
  a.pos = P<int32_t>(info, 6);
  a.T = I(info, 7);
  a.H = I(info, 8);
  a.Hkv = I(info, 9);
  a.Dk = I(info, 10);
  a.Dv = I(info, 11);
  a.bs = I(info, 12);
  a.S = I(info, 13);
  a.maxBlocks = I(info, 14);
  a.window = I(info, 15);
  a.scale = static_cast<float>(D(info, 16));
  a.kvType = info.Length() > 18 ? static_cast<int>(I(info, 18)) : 0;
  if (a.kvType < 0 || a.kvType > 3) {
    Napi::TypeError::New(info.Env(), "pagedAttention: kvType must be 0 (float32), 1 (float16), 2 (bfloat16) or 3 (int8)")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  if (a.kvType == 3) {
    if (info.Length() < 21) {
      Napi::TypeError::New(info.Env(), "pagedAttention: an int8 pool needs its K and V scales").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    a.kScale = P(info, 19);
    a.vScale = P(info, 20);
  }
  K->pagedAttention(a, static_cast<int>(I(info, 17)));
  return info.Env().Undefined();
}

/** pagedWrite(src, slots, pool, T, Hkv, D, kvType, nth[, scale]): src [Hkv, T, D] float32 -> pool rows slots[t] * Hkv + h;
 * scale (float32, one per pool row) with kvType 3 (int8) only */
Napi::Value PagedWrite(const Napi::CallbackInfo& info) {
  int kvType = static_cast<int>(I(info, 6));
  if (kvType < 0 || kvType > 3) {
    Napi::TypeError::New(info.Env(), "pagedWrite: kvType must be 0 (float32), 1 (float16), 2 (bfloat16) or 3 (int8)")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  if (kvType == 3 && info.Length() < 9) {
    Napi::TypeError::New(info.Env(), "pagedWrite: an int8 pool needs its scales").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  K->pagedWrite(P(info, 0), P<int32_t>(info, 1), P<void>(info, 2), I(info, 3), I(info, 4), I(info, 5), kvType,
                kvType == 3 ? P(info, 8) : nullptr, static_cast<int>(I(info, 7)));
  return info.Env().Undefined();
}

/** ropeHeads(x, cos, sin, out, T, H, D, half, nth) */
Napi::Value RopeHeads(const Napi::CallbackInfo& info) {
  K->ropeHeads(P(info, 0), P(info, 1), P(info, 2), P(info, 3), I(info, 4), I(info, 5), I(info, 6), I(info, 7),
               static_cast<int>(I(info, 8)));
  return info.Env().Undefined();
}

/** quantMatmul(bits, x, w, out, M, N, K, nth): VNNI where the target has it and cpuid reports it */
Napi::Value QuantMatmul(const Napi::CallbackInfo& info) {
  auto f = K->quantMatmulVnni && features().avx512vnni ? K->quantMatmulVnni : K->quantMatmul;
  f(static_cast<int>(I(info, 0)), P(info, 1), P<uint8_t>(info, 2), P(info, 3), I(info, 4), I(info, 5), I(info, 6),
    static_cast<int>(I(info, 7)));
  return info.Env().Undefined();
}

// ---- copy and dtype conversion ---------------------------------------------------------------------
uint16_t f32ToF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint32_t sign = (bits >> 16) & 0x8000, exp = (bits >> 23) & 0xff, mant = bits & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  int e = static_cast<int>(exp) - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    uint32_t m = mant | 0x800000, shift = 14 - e, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    uint32_t h = m >> shift;
    if (rest > half || (rest == half && (h & 1))) h++;
    return sign | h;
  }
  uint32_t rest = mant & 0x1fff;
  uint32_t h = sign | (e << 10) | (mant >> 13);
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return static_cast<uint16_t>(h);
}

float f16ToF32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else {
      int e = -1;
      do {
        mant <<= 1;
        e++;
      } while (!(mant & 0x400));
      bits = sign | ((112 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) bits = sign | 0x7f800000 | (mant << 13);
  else bits = sign | ((exp + 112) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

float bf16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/** convert(kind, src, dst, n, nth): contiguous dtype conversions. kind: 0 f32->f16, 1 f16->f32, 2 f32->bf16, 3 bf16->f32 */
Napi::Value Convert(const Napi::CallbackInfo& info) {
  int kind = static_cast<int>(I(info, 0));
  void* src = P<void>(info, 1);
  void* dst = P<void>(info, 2);
  int64_t n = I(info, 3);
  int nth = static_cast<int>(I(info, 4));
  parallel(nth, [&](int tid) {
    int64_t lo, hi;
    splitRange(n, nth < 1 ? 1 : nth, tid, &lo, &hi);
    auto* sf = static_cast<const float*>(src);
    auto* sh = static_cast<const uint16_t*>(src);
    auto* df = static_cast<float*>(dst);
    auto* dh = static_cast<uint16_t*>(dst);
    switch (kind) {
      case 0: for (int64_t i = lo; i < hi; i++) dh[i] = f32ToF16(sf[i]); break;
      case 1: for (int64_t i = lo; i < hi; i++) df[i] = f16ToF32(sh[i]); break;
      case 2: for (int64_t i = lo; i < hi; i++) dh[i] = f32ToBf16(sf[i]); break;
      default: for (int64_t i = lo; i < hi; i++) df[i] = bf16ToF32(sh[i]); break;
    }
  });
  return info.Env().Undefined();
}

/** copyStrided(src, dst, elemBytes, shape[], srcStrides[], dstStrides[], nth): same-dtype copy, any strides (elements) */
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  auto* src = P<char>(info, 0);
  auto* dst = P<char>(info, 1);
  int64_t eb = I(info, 2);
  Napi::Array shA = info[3].As<Napi::Array>(), ssA = info[4].As<Napi::Array>(), dsA = info[5].As<Napi::Array>();
  int nth = static_cast<int>(I(info, 6));
  int rank = static_cast<int>(shA.Length());
  std::vector<int64_t> sh(rank), ss(rank), ds(rank);
  int64_t n = 1;
  for (int d = 0; d < rank; d++) {
    sh[d] = shA.Get(d).As<Napi::Number>().Int64Value();
    ss[d] = ssA.Get(d).As<Napi::Number>().Int64Value() * eb;
    ds[d] = dsA.Get(d).As<Napi::Number>().Int64Value() * eb;
    n *= sh[d];
  }
  if (n == 0) return info.Env().Undefined();
  if (rank == 0) {
    std::memcpy(dst, src, eb);
    return info.Env().Undefined();
  }
  int64_t inner = sh[rank - 1], rowsN = n / inner, si = ss[rank - 1], di = ds[rank - 1];
  // rows of the innermost axis, split over threads; each row's offsets from its multi-index
  parallel(static_cast<int>(std::min<int64_t>(nth, rowsN)), [&](int tid) {
    int64_t lo, hi;
    splitRange(rowsN, static_cast<int>(std::min<int64_t>(nth < 1 ? 1 : nth, rowsN)), tid, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
      int64_t rem = r, so = 0, dof = 0;
      for (int d = rank - 2; d >= 0; d--) {
        int64_t idx = rem % sh[d];
        rem /= sh[d];
        so += idx * ss[d];
        dof += idx * ds[d];
      }
      const char* s = src + so;
      char* o = dst + dof;
      if (si == eb && di == eb) std::memcpy(o, s, inner * eb);
      else if (eb == 4)
        for (int64_t i = 0; i < inner; i++) std::memcpy(o + i * di, s + i * si, 4);
      else if (eb == 2)
        for (int64_t i = 0; i < inner; i++) std::memcpy(o + i * di, s + i * si, 2);
      else
        for (int64_t i = 0; i < inner; i++) o[i * di] = s[i * si];
    }
  });
  return info.Env().Undefined();
}

/**
 * fused(code Int32Array [op, a, b per node], consts Float32Array, inputs Float64Array (addresses),
 * lens Float64Array (elements of each input), out, n, nth): the program is checked again here (the TS
 * side validates it first) so a bad one throws instead of reading out of bounds.
 */
Napi::Value Fused(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Int32Array code = info[0].As<Napi::Int32Array>();
  Napi::Float32Array consts = info[1].As<Napi::Float32Array>();
  Napi::Float64Array ins = info[2].As<Napi::Float64Array>(), lens = info[3].As<Napi::Float64Array>();
  FusedArgs a{};
  a.nodes = static_cast<int>(code.ElementLength() / 3);
  int nin = static_cast<int>(ins.ElementLength());
  a.n = I(info, 5);
  if (a.nodes < 1 || a.nodes > FUSED_MAX_NODES || nin > FUSED_MAX_INPUTS || lens.ElementLength() != ins.ElementLength())
    throw Napi::RangeError::New(env, "native.fused: bad program size");
  for (int i = 0; i < nin; i++) {
    a.in[i] = reinterpret_cast<const float*>(static_cast<uintptr_t>(ins[i]));
    a.inLen[i] = static_cast<int64_t>(lens[i]);
    if (a.inLen[i] < 1 || a.n % a.inLen[i] != 0) throw Napi::RangeError::New(env, "native.fused: bad input length");
  }
  for (int k = 0; k < a.nodes; k++) {
    int32_t op = code[3 * k], x = code[3 * k + 1], y = code[3 * k + 2];
    bool ok = op == 0 ? x >= 0 && x < nin
              : op == 1 ? x >= 0 && static_cast<size_t>(x) < consts.ElementLength()
              : op <= 21 && x >= 0 && x < k && (op < 17 /* F_ADD: binary from here to F_MAX = 21 */ || (y >= 0 && y < k));
    if (!ok) throw Napi::RangeError::New(env, "native.fused: bad node " + std::to_string(k));
  }
  a.code = code.Data();
  a.consts = consts.Data();
  a.out = P(info, 4);
  K->fused(a, static_cast<int>(I(info, 6)));
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const char* forced = std::getenv("LINEAGE_NATIVE_TARGET");
  K = pick(forced ? forced : "");
  if (!K) K = pick("");
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) { exports.Set(name, Napi::Function::New(env, f, name)); };
  fn("alloc", Alloc);
  fn("wrap", Wrap);
  fn("free", Free);
  fn("trimCache", TrimCache);
  fn("cachedBytes", CachedBytes);
  fn("copyIn", CopyIn);
  fn("copyOut", CopyOut);
  fn("info", Info);
  fn("setTarget", SetTarget);
  fn("setThreads", SetThreads);
  fn("gemm", Gemm);
  fn("unary", Unary);
  fn("unaryBackward", UnaryBackward);
  fn("binary", Binary);
  fn("softmax", Softmax);
  fn("softmaxBackward", SoftmaxBackward);
  fn("norm", Norm);
  fn("normBackward", NormBackward);
  fn("crossEntropy", CrossEntropy);
  fn("crossEntropyBackward", CrossEntropyBackward);
  fn("adamw", AdamW);
  fn("attention", Attention);
  fn("attentionBackward", AttentionBackward);
  fn("reduce", Reduce);
  fn("gather", Gather);
  fn("scatterAdd", ScatterAdd);
  fn("pagedAttention", PagedAttention);
  fn("pagedWrite", PagedWrite);
  fn("ropeHeads", RopeHeads);
  fn("quantMatmul", QuantMatmul);
  fn("convert", Convert);
  fn("copyStrided", CopyStrided);
  fn("fused", Fused);
  return exports;
}

}  // namespace

NODE_API_MODULE(lineage_native, Init)
