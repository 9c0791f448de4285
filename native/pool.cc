// The native thread pool: std::thread workers that spin briefly on a generation counter (a kernel
// usually follows another within microseconds) and then sleep on a condition variable, so idle
// workers cost no CPU. The calling thread always takes part as thread 0.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace lineage {
namespace {

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable wake;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  std::atomic<bool> stopping{false};
  // the job of the current generation
  void (*fn)(void*, int) = nullptr;
  void* ctx = nullptr;
  int nth = 1;

  void worker(int tid) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g = generation.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < 20000; spin++) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
        g = generation.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu);
        wake.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen || stopping.load(); });
        g = generation.load(std::memory_order_acquire);
      }
      if (stopping.load()) return;
      seen = g;
      if (tid < nth) {
        fn(ctx, tid);
        pending.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  void resize(int total) {
    stop();
    stopping = false;
    for (int t = 1; t < total; t++) workers.emplace_back([this, t] { worker(t); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stopping = true;
    }
    wake.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }

  void run(int n, void (*f)(void*, int), void* c) {
    int total = static_cast<int>(workers.size()) + 1;
    if (n > total) n = total;
    if (n <= 1) {
      for (int t = 0; t < (n < 1 ? 1 : n); t++) f(c, t);
      return;
    }
    fn = f;
    ctx = c;
    nth = n;
    pending.store(n - 1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu);
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    wake.notify_all();
    f(c, 0);
    while (pending.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
  }

  ~Pool() { stop(); }
};

Pool& pool() {
  // never destroyed: joining workers from static destructors at process exit can deadlock
  static Pool* p = new Pool;
  return *p;
}

}  // namespace

void parallelRun(int nth, void (*fn)(void*, int), void* ctx) { pool().run(nth, fn, ctx); }
int poolThreads() { return static_cast<int>(pool().workers.size()) + 1; }
void setPoolThreads(int n) {
  if (n < 1) n = 1;
  if (n != poolThreads()) pool().resize(n);
}

}  // namespace lineage
