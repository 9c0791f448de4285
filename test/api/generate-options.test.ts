// The library's generate() checks its numeric options with errors naming them, as the Engine checks a
// request's (maxTokens NaN or -5 used to return [] silently, 2.5 gave 3 tokens, a seed 'abc' was accepted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel, generate, getPreset, type GenerateOptions } from '../../src/index.js';

test('generate: maxTokens, seed and sampling options are validated by name', () => {
  const m = createModel(getPreset('tiny-gpt2'), { seed: 0 });
  const bad = (o: Record<string, unknown>) => () => generate(m, [1], o as unknown as GenerateOptions);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ maxTokens: NaN }, /generate: maxTokens must be a non-negative integer, got NaN/],
    [{ maxTokens: -5 }, /generate: maxTokens must be a non-negative integer, got -5/],
    [{ maxTokens: 2.5 }, /generate: maxTokens must be a non-negative integer, got 2.5/],
    [{ maxTokens: '3' }, /generate: maxTokens must be a non-negative integer, got "3"/],
    [{}, /generate: maxTokens must be a non-negative integer, got undefined/],
    [{ maxTokens: 2, seed: 'abc' }, /generate: seed must be a safe integer, got "abc"/],
    [{ maxTokens: 2, seed: 1.5 }, /generate: seed must be a safe integer, got 1.5/],
    [{ maxTokens: 2, seed: 2 ** 60 }, /generate: seed must be a safe integer/],
    [{ maxTokens: 2, topP: '0.5' }, /sampling: topP must be in \(0, 1\], got "0.5"/],
    [{ maxTokens: 2, temperature: NaN }, /sampling: temperature must be >= 0/],
  ];
  for (const [o, re] of cases) assert.throws(bad(o), re, JSON.stringify(o));
  assert.throws(() => generate(m, [1], undefined as unknown as GenerateOptions), /generate: options .* required/);
  assert.deepEqual(generate(m, [1], { maxTokens: 0 }), []);
  assert.equal(generate(m, [1], { maxTokens: 2, temperature: 0, seed: -7 }).length, 2);
  m.dispose();
});
