// `lineage generate --regex / --json-schema` end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ajv } from '../infer/constrain-helpers.js';
import { runLineage } from '../helpers/cli.js';

const lineage = (args: string[]) => runLineage(args);

test('generate --regex with the bundled model; --json-schema it cannot spell is a clear error', () => {
  const pattern = '(ROMEO|JULIET): [a-z ]{3,20}[.!]';
  const r = lineage(['generate', '--regex', pattern, '--prompt', '\n', '--max-tokens', '40', '--seed', '3', '--json']);
  assert.equal(r.code, 0, r.err);
  assert.match(JSON.parse(r.out).text, new RegExp(`^(?:${pattern})$`));
  const dir = mkdtempSync(join(tmpdir(), 'lineage-constrain-'));
  try {
    const schema = join(dir, 'schema.json');
    const obj = {
      type: 'object',
      properties: { a: { type: 'integer' } },
      required: ['a'],
      additionalProperties: false,
    };
    writeFileSync(schema, JSON.stringify(obj));
    const bad = lineage(['generate', '--json-schema', schema, '--max-tokens', '20']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /cannot produce any output matching the JSON schema: it has no token for "\{"/);
    const both = lineage(['generate', '--json-schema', schema, '--regex', 'a']);
    assert.match(both.err, /cannot be combined/);
    const short = lineage(['generate', '--regex', 'ROMEO', '--max-tokens', '3']);
    assert.match(short.err, /--max-tokens 3: the shortest valid output needs up to 5 tokens/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --json-schema on a byte-vocabulary model prints JSON that validates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-constrain-'));
  try {
    const model = join(dir, 'm');
    const init = lineage(['init', '--preset', 'tiny-gpt2', '--tokenizer', 'bytes', '--seed', '5', '--out', model]);
    assert.equal(init.code, 0, init.err);
    const schema = {
      type: 'object',
      additionalProperties: false,
      required: ['city', 'temp'],
      properties: { city: { enum: ['Verona', 'Mantua'] }, temp: { type: 'number', minimum: -40, maximum: 50 } },
    };
    const file = join(dir, 'schema.json');
    writeFileSync(file, JSON.stringify({ name: 'weather', strict: true, schema }));
    const validate = ajv().compile(schema);
    for (const seed of ['1', '2']) {
      const args = [
        '--model',
        model,
        '--json-schema',
        file,
        '--prompt',
        'x',
        '--max-tokens',
        '60',
        '--seed',
        seed,
        '--json',
      ];
      const r = lineage(['generate', ...args]);
      assert.equal(r.code, 0, r.err);
      const value = JSON.parse(JSON.parse(r.out).text);
      assert.ok(validate(value), JSON.stringify(value));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
