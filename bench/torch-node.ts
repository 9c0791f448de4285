// Runs bench/torch_ref.py (PyTorch, same shapes and thread counts) from Node.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PYTHON = '/usr/bin/python3';

/** bench/torch_ref.py, found from dist/bench/ or bench/ */
function scriptPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'torch_ref.py'), join(here, '..', '..', 'bench', 'torch_ref.py')]) if (existsSync(p)) return p;
  throw new Error(`bench: torch_ref.py not found next to ${here}`);
}

export function torchAvailable(): boolean {
  if (!existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

export interface TorchRun<R> {
  info: { torch: string };
  results: R[];
}

export function runTorch<C extends object>(cases: C[]): TorchRun<C & { gflops?: number; gbps?: number; medianMs: number }> {
  const r = spawnSync(PYTHON, [scriptPath()], { input: JSON.stringify(cases), encoding: 'utf8', maxBuffer: 16 << 20, timeout: 30 * 60_000 });
  if (r.status !== 0) throw new Error(`bench: torch_ref.py failed (status ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as TorchRun<C & { gflops?: number; gbps?: number; medianMs: number }>;
}
