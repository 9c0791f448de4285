// Reading the files the CLI is pointed at, with errors that name the flag and the path (Node's own
// EISDIR / ENOENT messages name neither when the file is read by descriptor).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isPreset } from '../models/presets.js';

/** a UTF-8 text file; errors name the flag and the path (Node's EISDIR names neither) */
export function readTextFile(flag: string, path: string): string {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(`${flag} ${path}: ${missing ? 'no such file' : (e as Error).message}`);
  }
  if (isDir) throw new Error(`${flag} ${path}: is a directory, expected a text file`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${flag} ${path}: ${(e as Error).message}`);
  }
}

/** a --model value that must be a model directory: a missing one that names a preset says how to make one */
export function requireModelDir(flag: string, dir: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    const hint = isPreset(dir)
      ? `'${dir}' is a preset name, but this command needs a model directory; make one with ` +
        `'lineage init --preset ${dir} --out DIR' (random weights) or 'lineage train --model ${dir} ... --out DIR'`
      : 'not a model directory (no such directory)';
    throw new Error(`${flag} ${dir}: ${hint}`);
  }
  if (!isDir) throw new Error(`${flag} ${dir}: not a directory (expected a model directory with config.json)`);
  checkModelFiles(flag, dir);
}

/** the files a model directory's loader reads must be files (a directory there fails with a bare EISDIR) */
export function checkModelFiles(flag: string, dir: string): void {
  for (const name of ['config.json', 'model.safetensors', 'model.safetensors.index.json', 'tokenizer.json']) {
    const p = join(dir, name);
    if (existsSync(p) && statSync(p).isDirectory()) {
      throw new Error(`${flag} ${dir}: ${p} is a directory, expected a file`);
    }
  }
}
