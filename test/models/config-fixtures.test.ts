// The config.json files of the golden fixtures (written by scripts/fixtures from PyTorch models that follow
// transformers) must parse, round-trip, and have exactly as many parameters as their safetensors hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { readCheckpoint } from '../../src/io/checkpoint-node.js';
import { fromHFConfig, toHFConfig } from '../../src/models/hf-config.js';
import { countParams } from '../../src/models/inspect.js';

const ROOT = fileURLToPath(new URL('../../../fixtures/', import.meta.url));

/** Tensors in a state dict that are buffers, not parameters (transformers' num_parameters skips them). */
const BUFFERS = new Set(['final_logits_bias']);
/** DeepSeek-V3's MTP layers store copies of the shared embedding and head; the count has them once. */
const MTP_COPIES = /^model\.layers\.\d+\.(embed_tokens|shared_head\.head)\.weight$/;

const fixtures = existsSync(ROOT)
  ? readdirSync(ROOT).filter((d) => existsSync(`${ROOT}${d}/config.json`) && existsSync(`${ROOT}${d}/model.safetensors`))
  : [];

for (const name of fixtures) {
  test(`fixture ${name}: config round-trips and parameter count matches the checkpoint`, async () => {
    const ckpt = await readCheckpoint(ROOT + name);
    const cfg = fromHFConfig(ckpt.config);
    assert.equal(cfg.family, ckpt.config.model_type);
    const hf = toHFConfig(cfg);
    assert.deepEqual(fromHFConfig(hf), cfg);
    // the head's config.json fields come back exactly as transformers wrote them
    for (const k of ['architectures', 'id2label', 'label2id', 'classifier_dropout', 'problem_type'] as const) {
      if (k in hf) assert.deepEqual(hf[k], ckpt.config[k], `${name}: ${k}`);
    }
    const stored = ckpt.tensors
      .filter((t) => !BUFFERS.has(t.name.split('.').at(-1)!) && !MTP_COPIES.test(t.name))
      .reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(countParams(cfg).params, stored);
  });
}
