// `lineage bench all`: the benchmark suite. When /usr/bin/python3 can import torch, PyTorch runs the
// same shapes with the same thread counts in the same run, interleaved case by case with Lineage
// (the machine is shared: interleaving exposes both to the same load). Each case runs `rounds`
// times on each side; the figure kept is the best of the per-round medians, for both sides alike.
import os from 'node:os';
import {
  benchAttention,
  benchElementwise,
  benchGemm,
  type AttentionResult,
  type ElementwiseOp,
  type ElementwisePath,
  type ElementwiseResult,
  type GemmResult,
} from './kernels.js';
import { TorchServer, torchAvailable, type TorchResult } from './torch-node.js';

type Result = GemmResult | AttentionResult | ElementwiseResult;
export type Case =
  | { bench: 'gemm'; m: number; n: number; k: number; threads: number }
  | { bench: 'attention'; batchHeads: number; seq: number; headDim: number; causal: boolean; threads: number }
  | { bench: 'elementwise'; op: ElementwiseOp; path: ElementwisePath; size: number; threads: number };

export interface SuiteOptions {
  threads: number[];
  torch: boolean;
  json: boolean;
  /** sequence lengths of the attention memory sweep */
  sweep: number[];
  rounds: number;
  minSeconds?: number;
  /** Lineage backend under test (default wasm) */
  backend?: 'native' | 'wasm';
}

export function suiteCases(o: SuiteOptions): { main: Case[]; sweep: Case[] } {
  const main: Case[] = [];
  for (const t of o.threads) {
    main.push({ bench: 'gemm', m: 1024, n: 1024, k: 1024, threads: t });
    main.push({ bench: 'gemm', m: 512, n: 768, k: 3072, threads: t });
    for (const causal of [false, true])
      main.push({ bench: 'attention', batchHeads: 12, seq: 512, headDim: 64, causal, threads: t });
    for (const op of ['add', 'exp', 'gelu'] as const)
      main.push({ bench: 'elementwise', op, path: 'kernels', size: 16 << 20, threads: t });
    // chains: Lineage's fused kernel against PyTorch's eager ops
    for (const op of ['swiglu', 'bias-gelu'] as const)
      main.push({ bench: 'elementwise', op, path: 'fused', size: 16 << 20, threads: t });
  }
  const tmax = Math.max(...o.threads);
  const sweep: Case[] = o.sweep.map((seq) => ({
    bench: 'attention',
    batchHeads: 4,
    seq,
    headDim: 64,
    causal: true,
    threads: tmax,
  }));
  return { main, sweep };
}

async function runCase(c: Case, minSeconds?: number, backend?: 'native' | 'wasm'): Promise<Result> {
  const o = { threads: c.threads, minSeconds, backend };
  if (c.bench === 'gemm') return benchGemm(c.m, c.n, c.k, o);
  if (c.bench === 'attention') return benchAttention(c.batchHeads, c.seq, c.headDim, c.causal, o);
  return benchElementwise(c.op, c.size, o, c.path);
}

function label(c: Case): string {
  if (c.bench === 'gemm') return `gemm ${c.m}x${c.n}x${c.k}`;
  if (c.bench === 'attention') return `attention ${c.batchHeads}x${c.seq}x${c.headDim}${c.causal ? ' causal' : ''}`;
  return `${c.op}${c.path === 'fused' ? ' (fused)' : ''} ${c.size / (1 << 20)}M f32`;
}

function metric(r: { gflops?: number; gbps?: number }): string {
  return r.gflops !== undefined ? `${r.gflops.toFixed(1)} GFLOP/s` : `${r.gbps!.toFixed(1)} GB/s`;
}
function value(r: { gflops?: number; gbps?: number }): number {
  return r.gflops ?? r.gbps!;
}
function best<T extends { gflops?: number; gbps?: number }>(rs: T[]): T {
  return rs.reduce((a, b) => (value(b) > value(a) ? b : a));
}
function mib(b: number): string {
  return `${(b / 2 ** 20).toFixed(2)} MiB`;
}

export interface SuiteRow {
  case: string;
  threads: number;
  lineage: Result;
  torch: TorchResult | null;
  /** Lineage / PyTorch (throughput ratio: > 1 means Lineage is faster) */
  ratio: number | null;
  /** every round's medians, for the record */
  lineageRounds: number[];
  torchRounds: number[];
}

export async function runSuite(o: SuiteOptions): Promise<void> {
  const { main, sweep } = suiteCases(o);
  let torch: TorchServer | null = null;
  if (o.torch) {
    if (torchAvailable()) torch = await TorchServer.start();
    else if (!o.json)
      console.log('PyTorch not available (/usr/bin/python3 -c "import torch" failed): Lineage figures only');
  }
  const rows: SuiteRow[] = [];
  try {
    if (!o.json) {
      console.log(
        `machine: ${os.cpus()[0]?.model ?? '?'} x ${os.cpus().length}, Node ${process.version}, load average ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
      );
      console.log(
        `Lineage vs ${torch ? `PyTorch ${torch.version}` : '(no PyTorch)'}; best of ${o.rounds} round medians, interleaved; ratio > 1: Lineage faster`,
      );
    }
    for (const c of main) {
      const ours: Result[] = [];
      const theirs: TorchResult[] = [];
      for (let r = 0; r < o.rounds; r++) {
        ours.push(await runCase(c, o.minSeconds, o.backend));
        if (torch) theirs.push(await torch.run(c));
      }
      const l = best(ours);
      const t = theirs.length ? best(theirs) : null;
      const row: SuiteRow = {
        case: label(c),
        threads: c.threads,
        lineage: l,
        torch: t,
        ratio: t ? value(l) / value(t) : null,
        lineageRounds: ours.map(value),
        torchRounds: theirs.map(value),
      };
      rows.push(row);
      if (!o.json) {
        const tt = t ? `  torch ${metric(t).padStart(14)}  ratio ${row.ratio!.toFixed(2)}` : '';
        console.log(`  ${row.case.padEnd(30)} threads=${c.threads}  lineage ${metric(l).padStart(14)}${tt}`);
      }
    }
  } finally {
    torch?.close();
  }
  const sweepResults: AttentionResult[] = [];
  if (!o.json && sweep.length)
    console.log('attention memory sweep (fused kernel: extra memory linear in T; a composed one holds BH*T^2 scores)');
  for (const c of sweep) {
    const r = (await runCase(c, o.minSeconds, o.backend)) as AttentionResult;
    sweepResults.push(r);
    if (!o.json) {
      console.log(
        `  ${label(c).padEnd(30)} threads=${c.threads}  lineage ${metric(r).padStart(14)}  extra memory ${mib(r.peakBytes).padStart(10)}  (scores ${mib(r.scoresBytes)})`,
      );
    }
  }
  if (o.json) {
    const machine = {
      cpu: os.cpus()[0]?.model ?? '?',
      cores: os.cpus().length,
      node: process.version,
      loadavg: os.loadavg(),
    };
    console.log(JSON.stringify({ machine, torch: torch?.version ?? null, results: rows, sweep: sweepResults }));
  }
}
