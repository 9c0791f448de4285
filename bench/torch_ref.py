"""PyTorch reference timings for `lineage bench all` (same shapes, same thread counts, same run).

Reads a JSON list of cases on stdin, prints one JSON list of results on stdout.
  {"bench": "gemm", "m", "n", "k", "threads"}                 -> gflops (2*M*N*K / median seconds)
  {"bench": "attention", "batchHeads", "seq", "headDim", "causal", "threads"[, "backward"]}
      composed attention: matmul, softmax, matmul (what a framework without a fused kernel runs)
                                                              -> gflops (4*BH*T^2*D / median seconds)
      with "backward": true, forward + autograd backward      -> gflops (12*BH*T^2*D / median seconds)
  {"bench": "elementwise", "op": "add"|"exp"|"gelu"|"swiglu"|"bias-gelu", "size", "threads"}
      -> gbps (bytes of the chain's inputs + output / s; swiglu = silu(a) * b, bias-gelu = gelu(x + bias[ROW]))
"""
import json
import sys
import time

import torch

ROW = 4096  # bias-gelu: the bias row (an FFN width; divides the 16M-float size)


def timeit(fn, warmup=2, reps=5, min_seconds=0.3, max_reps=50):
    for _ in range(warmup):
        fn()
    times = []
    total = 0.0
    cpu0 = time.process_time()
    while len(times) < reps or (total < min_seconds and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    cpu = (time.process_time() - cpu0) / len(times)
    times.sort()
    n = len(times)
    med = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
    return med, n, cpu


def _openblas():
    """Debian's torch calls OpenBLAS, whose pthread pool ignores torch.set_num_threads: set it directly."""
    import ctypes
    import ctypes.util

    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            return lib.openblas_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


OPENBLAS_SET_THREADS = _openblas()


def set_threads(n):
    torch.set_num_threads(n)
    if OPENBLAS_SET_THREADS is not None:
        OPENBLAS_SET_THREADS(n)


def run(case):
    set_threads(int(case["threads"]))
    g = torch.Generator().manual_seed(0)
    b = case["bench"]
    if b == "gemm":
        m, n, k = case["m"], case["n"], case["k"]
        a = torch.rand(m, k, generator=g) - 0.5
        bb = torch.rand(k, n, generator=g) - 0.5
        c = torch.empty(m, n)
        sec, reps, cpu = timeit(lambda: torch.mm(a, bb, out=c))
        return {**case, "gflops": 2 * m * n * k / sec / 1e9, "medianMs": sec * 1e3, "reps": reps, "cpuMs": cpu * 1e3}
    if b == "attention":
        bh, t, d = case["batchHeads"], case["seq"], case["headDim"]
        q = torch.rand(bh, t, d, generator=g) - 0.5
        k = torch.rand(bh, t, d, generator=g) - 0.5
        v = torch.rand(bh, t, d, generator=g) - 0.5
        scale = 1.0 / d ** 0.5
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1) if case["causal"] else None

        def attn():
            s = torch.matmul(q, k.transpose(-1, -2)) * scale
            if mask is not None:
                s = s.masked_fill(mask, float("-inf"))
            p = torch.softmax(s, dim=-1)
            return torch.matmul(p, v)

        if case.get("backward"):
            # a training step's attention: forward, then autograd's backward to q, k, v
            for x in (q, k, v):
                x.requires_grad_(True)
            dout = torch.rand(bh, t, d, generator=g) - 0.5

            def step():
                q.grad = k.grad = v.grad = None
                attn().backward(dout)

            sec, reps, cpu = timeit(step)
            flops = 12 * bh * t * t * d
        else:
            with torch.no_grad():
                sec, reps, cpu = timeit(attn)
            flops = 4 * bh * t * t * d
        return {**case, "gflops": flops / sec / 1e9, "medianMs": sec * 1e3, "reps": reps, "cpuMs": cpu * 1e3}
    if b == "elementwise":
        n = case["size"]
        a = torch.rand(n, generator=g) - 0.5
        bb = torch.rand(n, generator=g) - 0.5
        out = torch.empty(n)
        tmp = torch.empty(n)
        bias = torch.rand(ROW if n % ROW == 0 else 1, generator=g) - 0.5
        x2 = a.view(-1, bias.numel())
        op = case["op"]
        # eager PyTorch: one kernel per op, into preallocated outputs (no allocation timed)
        fns = {
            "add": (lambda: torch.add(a, bb, out=out), 12),
            "exp": (lambda: torch.exp(a, out=out), 8),
            "gelu": (lambda: torch._C._nn.gelu(a, out=out), 8),
            "swiglu": (lambda: torch.mul(torch._C._nn.silu(a, out=tmp), bb, out=out), 12),
            "bias-gelu": (lambda: torch._C._nn.gelu(torch.add(x2, bias, out=tmp.view_as(x2)), out=out.view_as(x2)), 8),
        }
        if op not in fns:
            raise ValueError("unknown elementwise op " + str(op))
        fn, per = fns[op]
        sec, reps, cpu = timeit(fn)
        nbytes = per * n
        return {**case, "gbps": nbytes / sec / 1e9, "medianMs": sec * 1e3, "reps": reps, "cpuMs": cpu * 1e3}
    raise ValueError("unknown bench " + str(b))


def serve():
    """one JSON case per stdin line -> one JSON result per stdout line (lets the caller interleave runs)"""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            res = run(json.loads(line))
        except Exception as e:  # report, keep serving
            res = {"error": repr(e)}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


def main():
    if "--serve" in sys.argv:
        sys.stdout.write(json.dumps({"ready": True, "torch": torch.__version__, "openblasThreads": OPENBLAS_SET_THREADS is not None}) + "\n")
        sys.stdout.flush()
        serve()
        return
    cases = json.load(sys.stdin)
    out = []
    for c in cases:
        out.append(run(c))
    info = {"torch": torch.__version__}
    print(json.dumps({"info": info, "results": out}))


if __name__ == "__main__":
    main()
