// Quantized model directories (Node only); the format is documented in docs/QUANTIZATION.md.
//
//   config.json         the source config plus "quantization_config":
//                         { "quant_method": "lineage-gguf", "format": "q8_0" | "q4_0", "bits": 8 | 4,
//                           "group_size": 32, "modules": [paths], "conv1d": [paths] }
//   model.safetensors   each quantized module's "<path>.weight" as U8 [out, in/32 * blockBytes]: the GGUF blocks,
//                       row after row, byte for byte; every other tensor as in the source (its dtype and
//                       bytes: a BF16 embedding stays BF16)
//
// `takeQuantizedWeights` is the loader hook: it swaps a QuantLinear in for each listed module and returns
// the tensors that remain for the ordinary float load.
import { copyFileSync, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HfJson } from '../models/hf-config.js';
import type { Module } from '../nn/module.js';
import { Conv1D, Linear, QuantLinear, quantizeModel, type QuantizeOptions, type QuantizeReport } from '../nn/index.js';
import { checkQuantBits, packedWeight, weightBytes, type QuantBits } from '../ops/quant.js';
import { quantRowBytes } from '../backend/reference/quant.js';
import {
  SAFETENSORS_DTYPE_OF,
  parseSafetensors,
  tensorBytes,
  type RawTensor,
  type SafetensorsDType,
} from '../io/safetensors.js';
import { listCheckpointTensors, readConfigJson, readSafetensorsFile } from '../io/checkpoint-node.js';
import { toHalf } from './engine/kv-dtype.js';
import { toRaw } from '../models/load-node.js';
import { loadModelDir } from './model-dir-node.js';

export {
  QUANT_METHOD,
  readQuantizationConfig,
  takeQuantizedWeights,
  type QuantizationConfig,
} from '../models/quantized.js';
import { QUANT_METHOD, readQuantizationConfig, type QuantizationConfig } from '../models/quantized.js';

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  bytes: Uint8Array;
}

/** safetensors with raw U8 entries (the packed blocks) beside ordinary tensors; header padded to 8 bytes */
function serialize(entries: readonly Entry[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.length] };
    off += e.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + off);
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const e of entries) {
    out.set(e.bytes, p);
    p += e.bytes.length;
  }
  return out;
}

function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** the source tensors (F32 / F16 / BF16) that the quantized directory keeps as they are: every stored tensor
 * whose name is a parameter of the quantized model (the quantized weights are no longer parameters) */
async function sourceTensors(src: string, model: Module): Promise<Map<string, RawTensor>> {
  const names = new Set([...model.namedParameters()].map(([name]) => name));
  const byFile = new Map<string, Set<string>>();
  for (const e of await listCheckpointTensors(src)) {
    if (!names.has(e.name) || !['F32', 'F16', 'BF16'].includes(e.dtype)) continue;
    byFile.set(e.file, (byFile.get(e.file) ?? new Set()).add(e.name));
  }
  const out = new Map<string, RawTensor>();
  for (const [file, only] of byFile)
    for (const t of (await readSafetensorsFile(join(src, file), only)).tensors) out.set(t.name, t);
  return out;
}

/** true when the stored tensor holds exactly the parameter's values (its bytes can then be copied) */
function sameValues(stored: RawTensor, param: RawTensor): boolean {
  if (stored.shape.join() !== param.shape.join() || param.dtype !== 'float32') return false;
  const [a, b] = [stored.data, param.data as Float32Array];
  if (a.length !== b.length) return false;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < b.length; i++) {
    f[0] = b[i]!;
    const ok =
      stored.dtype === 'float32'
        ? Object.is(a[i], b[i]) || a[i] === b[i]
        : stored.dtype === 'bfloat16'
          ? (u[0]! & 0xffff) === 0 && u[0]! >>> 16 === a[i]
          : stored.dtype === 'float16' && toHalf(b[i]!) === a[i];
    if (!ok) return false;
  }
  return true;
}

/**
 * the tensors of a quantized model: U8 blocks for QuantLinears, the model's own parameters otherwise. A
 * parameter the source stores (`source`, by name) with exactly these values keeps the source's bytes and
 * dtype: loading widens BF16 / F16 to float32, and writing that would double embeddings and head
 */
export function quantizedTensors(model: Module, source: ReadonlyMap<string, RawTensor> = new Map()): Entry[] {
  const entries: Entry[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof QuantLinear)) continue;
    entries.push({
      name: `${path}.weight`,
      dtype: 'U8',
      shape: [m.outFeatures, quantRowBytes(m.inFeatures, m.bits)],
      bytes: weightBytes(m.q),
    });
  }
  for (const [name, t] of model.namedParameters()) {
    const stored = source.get(name);
    const own = toRaw(name, t);
    const raw = stored && sameValues(stored, own) ? { ...stored, name } : own;
    entries.push({ name, dtype: SAFETENSORS_DTYPE_OF[raw.dtype], shape: raw.shape, bytes: tensorBytes(raw) });
  }
  return entries;
}

export interface QuantizeDirResult extends QuantizeReport {
  bits: QuantBits;
  out: string;
  /** bytes of model.safetensors, source and output */
  sourceBytes: number;
  outBytes: number;
}

/** `lineage quantize`: loads a float model directory, quantizes it and writes `out` (files atomically) */
export async function quantizeModelDir(src: string, out: string, opts: QuantizeOptions): Promise<QuantizeDirResult> {
  const json = await readConfigJson(src);
  if (readQuantizationConfig(json, join(src, 'config.json')))
    throw new Error(`--model ${src}: the model is already quantized`);
  const { model } = await loadModelDir(src);
  try {
    const report = quantizeModel(model, opts);
    const source = report.quantized.length > 0 ? await sourceTensors(src, model) : new Map<string, RawTensor>();
    if (report.quantized.length === 0)
      throw new Error(
        `--model ${src}: no layer can be quantized (${report.skipped.map((s) => `${s.path}: ${s.reason}`).join('; ') || 'no Linear layers'})`,
      );
    const bits = opts.bits;
    const qc: QuantizationConfig = {
      quant_method: QUANT_METHOD,
      format: bits === 8 ? 'q8_0' : 'q4_0',
      bits,
      group_size: 32,
      modules: report.quantized,
      conv1d: report.conv1d,
    };
    const bytes = serialize(quantizedTensors(model, source));
    parseSafetensors(bytes, { file: 'quantized model.safetensors' }); // the reader accepts what we wrote
    mkdirSync(out, { recursive: true });
    writeAtomic(join(out, 'model.safetensors'), bytes);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      if (existsSync(join(src, f))) {
        copyFileSync(join(src, f), join(out, `${f}.tmp-${process.pid}`));
        renameSync(join(out, `${f}.tmp-${process.pid}`), join(out, f));
      }
    }
    writeAtomic(join(out, 'config.json'), `${JSON.stringify({ ...json, quantization_config: qc }, null, 2)}\n`);
    const srcWeights = join(src, 'model.safetensors');
    return {
      ...report,
      bits,
      out,
      sourceBytes: existsSync(srcWeights) ? statSync(srcWeights).size : 0,
      outBytes: bytes.length,
    };
  } finally {
    model.dispose();
  }
}
