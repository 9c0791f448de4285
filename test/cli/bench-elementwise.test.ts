// `lineage bench elementwise`: the single ops and the fused chains, as JSON, and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');

function lineage(args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'bench', 'elementwise', ...args, '--threads', '1'], {
    encoding: 'utf8',
    env: { ...process.env, LINEAGE_THREADS: '1' },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('bench elementwise: gelu and the fused chains report GB/s and the path that ran', () => {
  for (const [op, path] of [
    ['gelu', 'kernels'],
    ['swiglu', 'fused'],
    ['bias-gelu', 'fused'],
    ['bias-gelu', 'kernels'],
  ] as const) {
    const r = lineage(['--op', op, '--path', path, '--size', '8192', '--min-seconds', '0.01', '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out.trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.equal(j.op, op);
    assert.equal(j.path, path);
    assert.ok((j.gbps as number) > 0);
  }
});

test('bench elementwise: an unknown op, path or a bias-gelu size off the bias row are clear errors', () => {
  assert.match(lineage(['--op', 'softmax']).err, /--op must be one of add, exp, gelu, swiglu, bias-gelu/);
  assert.match(lineage(['--op', 'gelu', '--path', 'magic']).err, /--path must be fused or kernels/);
  assert.match(
    lineage(['--op', 'bias-gelu', '--size', '1000', '--no-torch']).err,
    /--size 1000 must be a multiple of the bias row 4096/,
  );
});
