// The README's library example is real: extracted from README.md and run as a user would run it
// (`import ... from 'lineage'`, resolved through package.json's exports), on the fast backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = process.cwd();

function readmeExample(): string {
  const md = readFileSync(join(root, 'README.md'), 'utf8');
  const m = /<!-- readme-example -->\s*```js\n([\s\S]*?)```/.exec(md);
  assert.ok(m, 'README.md has a <!-- readme-example --> js block');
  return m[1]!;
}

test('README library example runs and does what it says', () => {
  const file = join(root, 'dist', `readme-example-${process.pid}.mjs`);
  writeFileSync(file, readmeExample());
  try {
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', file], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, `example failed:\n${r.stderr}`);
    const out = r.stdout;
    assert.match(
      out,
      /^\[(native|wasm)[^\]]*\] ROMEO:/m,
      'generates from the bundled model on a fast backend (native, else wasm) by default',
    );
    assert.match(out, /loss \d+\.\d+ grad shape 4x3/);
    const m = /tiny gpt2 loss (\d+\.\d+) -> (\d+\.\d+)/.exec(out);
    assert.ok(m, out);
    assert.ok(Number(m[2]) < Number(m[1]) - 0.5, `training lowers the loss: ${m[1]} -> ${m[2]}`);
  } finally {
    rmSync(file, { force: true });
  }
});

test('the package exports resolve: lineage (node), lineage/core, lineage/node', () => {
  const code = `
    const a = await import('lineage'); const b = await import('lineage/core'); const c = await import('lineage/node');
    for (const k of ['generate', 'Trainer', 'loadModelDir', 'saveModelDir', 'createModel', 'tidy', 'backward']) if (!(k in a)) throw new Error('lineage lacks ' + k);
    if ('loadModelDir' in b) throw new Error('lineage/core must stay browser-safe');
    if (a.loadModelDir !== c.loadModelDir) throw new Error('lineage and lineage/node differ');
    console.log(a.getBackend().name);`;
  const file = join(root, 'dist', `exports-${process.pid}.mjs`);
  writeFileSync(file, code);
  try {
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', file], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, LINEAGE_BACKEND: 'reference' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'reference', 'LINEAGE_BACKEND=reference is honoured');
  } finally {
    rmSync(file, { force: true });
  }
});
