import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  AtomicFileWriter,
  checkpointDir,
  checkpointDirSync,
  recoverCheckpointDir,
  writeCheckpointFiles,
  writeFileAtomic,
  writeJSONAtomic,
} from '../../src/train/atomic-node.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lineage-atomic-'));
}

test('writeFileAtomic replaces content and leaves no temp files', () => {
  const dir = tmpDir();
  const p = path.join(dir, 'f.txt');
  writeFileAtomic(p, 'one');
  writeFileAtomic(p, new TextEncoder().encode('two'));
  writeJSONAtomic(path.join(dir, 'g.json'), { a: 1 });
  assert.equal(fs.readFileSync(p, 'utf8'), 'two');
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'g.json'), 'utf8')), { a: 1 });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['f.txt', 'g.json']);
});

test('old content survives a write that never reaches the rename', () => {
  const dir = tmpDir();
  const p = path.join(dir, 'f.txt');
  writeFileAtomic(p, 'old');
  const w = new AtomicFileWriter(p);
  w.write(new TextEncoder().encode('half of the new conte'));
  // crash here: no commit
  assert.equal(fs.readFileSync(p, 'utf8'), 'old');
  w.abort();
  assert.deepEqual(fs.readdirSync(dir), ['f.txt']);
});

test('checkpointDir swaps a complete directory in and drops the old one', async () => {
  const dir = tmpDir();
  const ck = path.join(dir, 'ckpt');
  writeCheckpointFiles(ck, { 'model.safetensors': new Uint8Array([1, 2, 3]), 'state.json': '{"step":1}' });
  await checkpointDir(ck, async (tmp) => {
    assert.ok(path.basename(tmp).startsWith('ckpt.tmp-'));
    fs.writeFileSync(path.join(tmp, 'state.json'), '{"step":2}');
  });
  assert.deepEqual(fs.readdirSync(ck), ['state.json']);
  assert.equal(fs.readFileSync(path.join(ck, 'state.json'), 'utf8'), '{"step":2}');
  assert.deepEqual(fs.readdirSync(dir), ['ckpt']);
  assert.throws(() => writeCheckpointFiles(ck, { '../evil': 'x' }), /escapes/);
  assert.deepEqual(fs.readdirSync(dir), ['ckpt']);
});

test('a failing writer keeps the previous checkpoint and removes the temp dir', () => {
  const dir = tmpDir();
  const ck = path.join(dir, 'ckpt');
  writeCheckpointFiles(ck, { 'state.json': 'old' });
  assert.throws(
    () =>
      checkpointDirSync(ck, (tmp) => {
        fs.writeFileSync(path.join(tmp, 'state.json'), 'partial');
        throw new Error('disk full');
      }),
    /disk full/,
  );
  assert.equal(fs.readFileSync(path.join(ck, 'state.json'), 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['ckpt']);
});

test('a process killed mid-checkpoint leaves the old checkpoint; the next run cleans up', () => {
  const dir = tmpDir();
  const ck = path.join(dir, 'ckpt');
  writeCheckpointFiles(ck, { 'state.json': 'old' });
  const mod = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/train/atomic-node.js');
  const code = `
    import * as fs from 'node:fs';
    import { checkpointDirSync } from ${JSON.stringify(mod)};
    checkpointDirSync(${JSON.stringify(ck)}, (tmp) => {
      fs.writeFileSync(tmp + '/state.json', 'new but incomplete');
      process.kill(process.pid, 'SIGKILL');
    });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code]);
  assert.equal(r.signal, 'SIGKILL');
  assert.equal(fs.readFileSync(path.join(ck, 'state.json'), 'utf8'), 'old');
  assert.equal(fs.readdirSync(dir).filter((n) => n.includes('.tmp-')).length, 1, 'the killed run left its temp dir');
  recoverCheckpointDir(ck);
  assert.deepEqual(fs.readdirSync(dir), ['ckpt']);
});

test('recoverCheckpointDir restores the old checkpoint after a crash between the two renames', () => {
  const dir = tmpDir();
  const ck = path.join(dir, 'ckpt');
  fs.mkdirSync(`${ck}.old-4242`);
  fs.writeFileSync(`${ck}.old-4242/state.json`, 'old');
  fs.mkdirSync(`${ck}.tmp-4242`);
  recoverCheckpointDir(ck);
  assert.deepEqual(fs.readdirSync(dir), ['ckpt']);
  assert.equal(fs.readFileSync(path.join(ck, 'state.json'), 'utf8'), 'old');
});
