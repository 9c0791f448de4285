// `--set` overrides carry to the config.json fields transformers derives from them when a config is built
// (applyOverrides), unless the user sets those too or the config holds an independent value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type HfJson, applyOverrides } from '../../src/models/hf-config.js';
import { getPresetInfo } from '../../src/models/presets.js';

const llama = (extra: HfJson = {}): HfJson => ({
  ...getPresetInfo('tiny-llama').hf,
  vocab_size: 256,
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  intermediate_size: 128,
  num_hidden_layers: 1,
  ...extra,
});

test('head_dim written as hidden_size / num_attention_heads follows an override of either', () => {
  const base = llama({ head_dim: 16 }); // a config.json that spells out the derived value (as Mistral's do)
  assert.equal(applyOverrides(base, ['hidden_size=128']).head_dim, 32);
  assert.equal(applyOverrides(base, ['num_attention_heads=8', 'num_key_value_heads=8']).head_dim, 8);
  // the user's own head_dim wins
  assert.equal(applyOverrides(base, ['hidden_size=128', 'head_dim=16']).head_dim, 16);
  // no override of its inputs: untouched
  assert.equal(applyOverrides(base, ['num_hidden_layers=2']).head_dim, 16);
});

test("an independent head_dim (unlike hidden_size / heads, as Gemma's 256) is kept", () => {
  const base = llama({ head_dim: 32 }); // 64 / 4 = 16 would be derived
  assert.equal(applyOverrides(base, ['hidden_size=128']).head_dim, 32);
});

test('Mamba: intermediate_size = expand * hidden_size and a numeric time_step_rank = ceil(hidden_size / 16) follow hidden_size', () => {
  const hf = getPresetInfo('mamba-130m').hf;
  const small = applyOverrides(hf, ['hidden_size=64']);
  assert.equal(small.intermediate_size, 128);
  assert.equal(applyOverrides({ ...hf, time_step_rank: 48 }, ['hidden_size=64']).time_step_rank, 4);
  assert.equal(applyOverrides({ ...hf, time_step_rank: 7 }, ['hidden_size=64']).time_step_rank, 7);
  assert.equal(applyOverrides(hf, ['hidden_size=64', 'expand=3']).intermediate_size, 192);
  assert.throws(
    () => applyOverrides(hf, ['hidden_size=64', 'intermediate_size=100']),
    /field "intermediate_size" must equal expand \* hidden_size \(128\), got 100/,
  );
});

test('GPT-2: an explicit n_inner of 4 * n_embd follows n_embd; null stays null', () => {
  const hf = { ...getPresetInfo('tiny-gpt2').hf, n_embd: 64, n_head: 4 };
  assert.equal(applyOverrides({ ...hf, n_inner: 256 }, ['n_embd=32']).n_inner, 128);
  assert.equal(applyOverrides({ ...hf, n_inner: 100 }, ['n_embd=32']).n_inner, 100);
  assert.equal(applyOverrides({ ...hf, n_inner: null }, ['n_embd=32']).n_inner, null);
});

test('a bad hidden size is blamed on its own field, not on the heads that must divide it', () => {
  assert.throws(
    () => applyOverrides(llama(), ['hidden_size=-5']),
    /field "hidden_size" must be a positive integer, got -5/,
  );
  assert.throws(
    () => applyOverrides(getPresetInfo('gpt2').hf, ['n_embd=0']),
    /field "n_embd" must be a positive integer, got 0/,
  );
  assert.throws(
    () => applyOverrides(llama(), ['num_attention_heads=5']),
    /field "num_attention_heads" = 5 must divide the hidden size hidden_size = 64/,
  );
});
