// Node file helpers: read a tokenizer from tokenizer.json / a model directory, write one atomically.
// (Node-only: imported by the CLI, tests and benches, never by browser code.)
import { existsSync, readFileSync, renameSync, statSync, writeFileSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bytesTokenizer } from './simple.js';
import { Tokenizer } from './tokenizer.js';

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`loadTokenizer: cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`loadTokenizer: ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Loads a tokenizer from a tokenizer.json file or a model directory holding tokenizer.json (plus
 * tokenizer_config.json and chat_template.jinja when present, next to it). `'bytes'` gives bytesTokenizer().
 */
export function loadTokenizer(pathOrDir: string): Tokenizer {
  if (pathOrDir === 'bytes') return bytesTokenizer();
  if (!existsSync(pathOrDir))
    throw new Error(
      `loadTokenizer: ${pathOrDir} does not exist (expected tokenizer.json, a model directory, or "bytes")`,
    );
  const isDir = statSync(pathOrDir).isDirectory();
  const file = isDir ? join(pathOrDir, 'tokenizer.json') : pathOrDir;
  if (!existsSync(file)) throw new Error(`loadTokenizer: ${pathOrDir} has no tokenizer.json`);
  const dir = dirname(file);
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? readJson(cfgPath) : {};
  const jinja = join(dir, 'chat_template.jinja');
  if (config.chat_template === undefined && existsSync(jinja)) config.chat_template = readFileSync(jinja, 'utf8');
  try {
    return Tokenizer.fromJSON(readJson(file), config);
  } catch (e) {
    throw new Error(`loadTokenizer: ${file}: ${(e as Error).message}`);
  }
}

/** Writes `text` to `path` atomically (temp file in the same directory, then rename). */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw new Error(`saveTokenizer: cannot write ${path}: ${(e as Error).message}`);
  }
}

/**
 * Saves a tokenizer. A path ending in ".json" gets the tokenizer.json only; any other path is treated as a
 * directory (created if needed) receiving tokenizer.json and tokenizer_config.json (special-token roles,
 * chat template) — the layout transformers' AutoTokenizer reads.
 */
export function saveTokenizer(tok: Tokenizer, path: string): void {
  const json = JSON.stringify(tok.toJSON(), null, 2) + '\n';
  if (path.endsWith('.json')) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, json);
    return;
  }
  mkdirSync(path, { recursive: true });
  writeFileAtomic(join(path, 'tokenizer.json'), json);
  writeFileAtomic(join(path, 'tokenizer_config.json'), JSON.stringify(tok.toConfigJSON(), null, 2) + '\n');
}
