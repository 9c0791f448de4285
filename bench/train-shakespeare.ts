// Lineage vs PyTorch on nanoGPT's CPU Shakespeare recipe, one after the other on the same machine:
//   node dist/bench/train-shakespeare.js [--data FILE] [--iters N] [--threads T] [--python /usr/bin/python3]
// Runs bench/train-shakespeare.py (PyTorch) and `lineage train --recipe shakespeare-char-cpu`, then prints
// both final val losses and the wall-time ratio (training loop incl. evals; process start-up excluded).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface RunResult {
  valLoss: number;
  trainLoss: number;
  steps: number;
  seconds: number;
}

const root = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> package root

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

function lastJson(what: string, r: ReturnType<typeof spawnSync>): RunResult {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${String(r.stderr).slice(-2000)}`);
  const line = String(r.stdout).trim().split('\n').at(-1)!;
  return JSON.parse(line) as RunResult;
}

function main(): void {
  const data = arg('data', join(root, 'data', 'tinyshakespeare.txt'));
  const iters = arg('iters', '2000');
  const threads = arg('threads', '1');
  const python = arg('python', '/usr/bin/python3');
  console.log(`nanoGPT shakespeare-char CPU recipe, ${iters} iterations, ${threads} thread(s)`);
  const torch = lastJson(
    'PyTorch',
    spawnSync(
      python,
      [join(root, 'bench', 'train-shakespeare.py'), '--data', data, '--iters', iters, '--threads', threads],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 },
    ),
  );
  console.log(
    `PyTorch: val loss ${torch.valLoss.toFixed(4)}, train loss ${torch.trainLoss.toFixed(4)}, ${torch.seconds.toFixed(1)} s`,
  );
  const out = mkdtempSync(join(tmpdir(), 'lineage-bench-train-'));
  try {
    const args = [
      join(root, 'bin', 'lineage.js'),
      'train',
      '--recipe',
      'shakespeare-char-cpu',
      '--data',
      data,
      '--out',
      out,
      '--steps',
      iters,
      '--quiet',
      '--json',
    ];
    if (iters !== '2000') args.push('--decay-steps', iters);
    const lin = lastJson(
      'Lineage',
      spawnSync(process.execPath, args, {
        encoding: 'utf8',
        env: { ...process.env, LINEAGE_THREADS: threads },
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 1 << 26,
      }),
    );
    console.log(
      `Lineage: val loss ${lin.valLoss.toFixed(4)}, train loss ${lin.trainLoss.toFixed(4)}, ${lin.seconds.toFixed(1)} s`,
    );
    console.log(`wall-time ratio Lineage / PyTorch: ${(lin.seconds / torch.seconds).toFixed(2)}x`);
    console.log(JSON.stringify({ pytorch: torch, lineage: lin, ratio: lin.seconds / torch.seconds }));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

main();
