// Runs bench/torch_ref.py (PyTorch, same shapes and thread counts) from Node, as a long-lived
// process answering one case at a time so Lineage and PyTorch runs can be interleaved.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const PYTHON = '/usr/bin/python3';

/** bench/torch_ref.py, found from dist/bench/ or bench/ */
function scriptPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'torch_ref.py'), join(here, '..', '..', 'bench', 'torch_ref.py')])
    if (existsSync(p)) return p;
  throw new Error(`bench: torch_ref.py not found next to ${here}`);
}

export function torchAvailable(): boolean {
  if (!existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

export interface TorchResult {
  gflops?: number;
  gbps?: number;
  medianMs: number;
  error?: string;
}

export class TorchServer {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  private stderr = '';
  version = '';

  private constructor() {
    this.proc = spawn(PYTHON, [scriptPath(), '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.waiting.shift()?.resolve(line));
    this.proc.on('exit', (code) => {
      for (const w of this.waiting.splice(0))
        w.reject(new Error(`bench: torch_ref.py exited (${code}): ${this.stderr}`));
    });
  }

  static async start(): Promise<TorchServer> {
    const s = new TorchServer();
    const hello = JSON.parse(await s.next()) as { torch: string };
    s.version = hello.torch;
    return s;
  }

  private next(): Promise<string> {
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  async run(c: object): Promise<TorchResult> {
    const p = this.next();
    this.proc.stdin.write(JSON.stringify(c) + '\n');
    const r = JSON.parse(await p) as TorchResult;
    if (r.error) throw new Error(`bench: torch_ref.py failed on ${JSON.stringify(c)}: ${r.error}`);
    return r;
  }

  close(): void {
    this.proc.stdin.end();
    this.proc.kill();
  }
}
