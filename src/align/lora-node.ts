// PEFT adapter directories on disk (adapter_config.json + adapter_model.safetensors), written atomically.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Module } from '../nn/module.js';
import { writeFileAtomic, writeJSONAtomic } from '../train/atomic-node.js';
import { loadAdapter, parsePeftConfig, peftConfig, serializeAdapter, type LoraConfig } from './lora.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

export function isAdapterDir(dir: string): boolean {
  return existsSync(join(dir, ADAPTER_CONFIG));
}

export function saveAdapterDir(dir: string, model: Module, c: LoraConfig, base: string): void {
  writeFileAtomic(join(dir, ADAPTER_WEIGHTS), serializeAdapter(model));
  writeJSONAtomic(join(dir, ADAPTER_CONFIG), peftConfig(c, model, base));
}

/** reads DIR's adapter and applies it to `model` (its base); returns the config */
export function loadAdapterDir(model: Module, dir: string): LoraConfig {
  const cfgFile = join(dir, ADAPTER_CONFIG);
  if (!existsSync(cfgFile)) throw new Error(`--lora ${dir}: not a LoRA adapter directory (no ${ADAPTER_CONFIG})`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new Error(`${cfgFile}: ${(e as Error).message}`);
  }
  const c = parsePeftConfig(json, cfgFile);
  const weights = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(weights)) throw new Error(`--lora ${dir}: no ${ADAPTER_WEIGHTS}`);
  loadAdapter(model, c, new Uint8Array(readFileSync(weights)), weights);
  return c;
}
