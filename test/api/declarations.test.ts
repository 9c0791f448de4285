// The published declarations (dist/src/*.d.ts) type-check in a user's strict project with skipLibCheck
// false, in a browser project (lib es2022 + dom, no @types/node) and in a Node one, and the tensor
// methods are typed: a deliberate misuse must be reported. (methods.d.ts once lost its `Tensor` import,
// so every method was `any` and 99 errors hid behind the default-off skipLibCheck.) One tsc run (-b over
// both projects), against the package as installed (`lineage` and `lineage/core` through its exports).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = process.cwd();

const BROWSER = `import { createTask, MemoryTokenFile, randn, tensor, zeros, type TaskData, type Tensor, type TokenSource } from 'lineage/core';
const t: Tensor = randn([2, 3]).gelu().add(tensor([1, 2, 3])).reshape(3, 2).matmul(randn([2, 1]));
const bad: string = t.mean(); // ERROR 2322
t.noSuchMethod(); // ERROR 2339
const src: TokenSource = { length: 10, read: (start: number, count: number) => new Int32Array(count) };
const data: TaskData = { train: src, val: new MemoryTokenFile([1, 2, 3]) };
const z = zeros([1], { dtype: 'int32' });
z[Symbol.dispose]();
export { bad, createTask, data };
`;

const NODE = `import { NodeTokenFile, randn, type Tensor } from 'lineage';
const n: number = randn([2, 3]).sum(); // ERROR 2322
const ok: Tensor = randn([2]).to('float16').softmax(-1);
export { n, ok, NodeTokenFile };
`;

const options = { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true };

test('the published .d.ts compile in strict user projects (skipLibCheck false) and type the tensor methods', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-dts-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'lineage'), 'dir');
    writeFileSync(join(dir, 'browser.ts'), BROWSER);
    writeFileSync(join(dir, 'node.ts'), NODE);
    const project = (file: string, extra: object) =>
      JSON.stringify({ compilerOptions: { ...options, skipLibCheck: false, ...extra }, files: [file] });
    writeFileSync(join(dir, 'tsconfig.browser.json'), project('browser.ts', { lib: ['es2022', 'dom'], types: [] }));
    const typeRoots = [join(root, 'node_modules', '@types')];
    writeFileSync(join(dir, 'tsconfig.node.json'), project('node.ts', { typeRoots, types: ['node'] }));
    const tsc = join(root, 'node_modules', '.bin', 'tsc');
    const r = spawnSync(tsc, ['-b', 'tsconfig.browser.json', 'tsconfig.node.json'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    const errors = [...out.matchAll(/^(\S+)\((\d+),\d+\): error TS(\d+)/gm)].map((m) => `${m[1]}:${m[2]} TS${m[3]}`);
    const expected = Object.entries({ 'browser.ts': BROWSER, 'node.ts': NODE }).flatMap(([file, text]) =>
      text
        .split('\n')
        .flatMap((line, i) => [...line.matchAll(/ERROR (\d+)/g)].map((m) => `${file}:${i + 1} TS${m[1]}`)),
    );
    assert.deepEqual(errors.sort(), expected.sort(), `tsc output:\n${out}`);
    const stray = out.split('\n').filter((l) => /error TS/.test(l) && !/^(browser|node)\.ts\(/.test(l));
    assert.deepEqual(stray, [], 'errors outside the user program (in the declarations, or global)');
    assert.notEqual(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
