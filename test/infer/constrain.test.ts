// Constrained decoding: automaton pieces against JavaScript's own RegExp / JSON.parse, and random walks
// over the masks (byte, character and GPT-2 byte-level BPE vocabularies) that must always end in text
// that parses and validates (ajv), never in a dead end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utf8Sequences } from '../../src/infer/constrain/charset.js';
import { integerRangeRegex, numberRangeRegex } from '../../src/infer/constrain/numeric.js';
import {
  compileConstraint,
  createConstraint,
  toolCallSchema,
  type ConstraintSpec,
  type ToolDefinition,
} from '../../src/infer/constrain/index.js';
import { gpt2Tokenizer } from '../tokenizers/helpers.js';
import {
  accepts,
  ajv,
  bytesTokenizer,
  decodeBytes,
  jsonCharTokenizer,
  randomWalk,
  rng,
  shakespeareTokenizer,
} from './constrain-helpers.js';

test('UTF-8 range splitting covers exactly the encodings of the range', () => {
  const r = rng(7);
  const enc = new TextEncoder();
  for (let trial = 0; trial < 60; trial++) {
    let lo = Math.floor(r() * 0x11000),
      hi = lo + Math.floor(r() * (trial % 2 ? 0x20000 : 300));
    hi = Math.min(hi, 0x10ffff);
    const seqs = utf8Sequences(lo, hi);
    const fits = (s: [number, number][], bytes: Uint8Array) => s.every(([a, b], k) => bytes[k] >= a && bytes[k] <= b);
    const matches = (bytes: Uint8Array) => seqs.some((s) => s.length === bytes.length && fits(s, bytes));
    for (let k = 0; k < 200; k++) {
      const cp = Math.floor(r() * 0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const inRange = cp >= lo && cp <= hi && !(cp >= 0xd800 && cp <= 0xdfff);
      const where = `cp ${cp.toString(16)} in [${lo.toString(16)}, ${hi.toString(16)}]`;
      assert.equal(matches(enc.encode(String.fromCodePoint(cp))), inRange, where);
    }
    for (const cp of [lo, hi]) if (cp < 0xd800 || cp > 0xdfff) assert.ok(matches(enc.encode(String.fromCodePoint(cp))));
  }
});

test('integer and number range regexes agree with the bounds', () => {
  const bounds: [number | null, boolean, number | null, boolean][] = [
    [0, false, 100, false],
    [-37, false, 12, true],
    [5, true, null, false],
    [null, false, -8, false],
    [-120, true, -3, true],
    [7, false, 7, false],
    [0, true, 1, true],
    [99, false, 1001, false],
    [-1, false, 0, false],
  ];
  const ints: number[] = [];
  for (let n = -1200; n <= 1200; n++) ints.push(n);
  const reals = [...ints.filter((n) => n % 7 === 0), 0.5, -0.25, 7.001, 6.999, 100.0, 99.99, -3.5, -8.1, 1e-3, 5.0001];
  for (const [lo, le, hi, he] of bounds) {
    const L = lo === null ? null : { value: lo, exclusive: le },
      H = hi === null ? null : { value: hi, exclusive: he };
    const inside = (x: number) => (lo === null || (le ? x > lo : x >= lo)) && (hi === null || (he ? x < hi : x <= hi));
    const isrc = integerRangeRegex(L, H),
      nsrc = numberRangeRegex(L, H);
    const ire = isrc === null ? null : new RegExp(`^(?:${isrc})$`);
    const nre = nsrc === null ? null : new RegExp(`^(?:${nsrc})$`);
    const where = JSON.stringify([lo, le, hi, he]);
    for (const n of ints) assert.equal(!!ire?.test(String(n)), inside(n), `integer ${n} in ${where}`);
    for (const b of [lo, hi]) if (b !== null) assert.equal(!!nre?.test(`${b}.000`), inside(b), `${b}.000 vs ${nsrc}`);
    const edges = [lo, hi].flatMap((b) => (b === null ? [] : [b, b + 0.5, b - 0.5, b + 0.001, b - 0.001]));
    for (const x of [...reals, ...edges]) {
      const text = Number.isInteger(x) && x % 2 ? `${x}.000` : String(x);
      if (nre?.test(text)) assert.ok(inside(x), `number ${text} matched ${nsrc} but is outside`);
      if (Number.isInteger(x) && inside(x)) assert.ok(nre?.test(text), `number ${text} inside, not matched by ${nsrc}`);
    }
  }
  assert.equal(integerRangeRegex({ value: 3, exclusive: true }, { value: 4, exclusive: true }), null);
});

const REGEXES = [
  '[a-c]{2,4}x?',
  '(ab|cd)*e',
  '\\d{3}-\\d{2}',
  '[^a-z\\n]+',
  'caf\u00e9|\u65e5\u672c+',
  '(?:0|[1-9]\\d*)(\\.\\d+)?',
  '[\\w.]+@[a-z]+\\.(com|org)',
  'a.b',
  '\\u{1F600}{1,2}|[\\u0400-\\u04ff]{2}',
  '(x|y){0,3}z',
  '^start$',
  '[\\s\\S]{0,2}q',
];

test('regex constraints accept exactly what RegExp fully matches', () => {
  const r = rng(11);
  const alphabet = [
    'a',
    'b',
    'c',
    'd',
    'e',
    'x',
    'y',
    'z',
    'q',
    '0',
    '1',
    '7',
    '-',
    '.',
    '@',
    '\n',
    ' ',
    '\u00e9',
    '\u65e5',
    '\u672c',
    '\ud83d\ude00',
    '\u0416',
    'com',
    'org',
    'caf',
    'start',
    's',
  ];
  for (const p of REGEXES) {
    const re = new RegExp(`^(?:${p})$`, 'u');
    const spec: ConstraintSpec = { kind: 'regex', pattern: p };
    let matched = 0;
    for (let k = 0; k < 250; k++) {
      let s = '';
      const n = Math.floor(r() * 6);
      for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
      const want = re.test(s);
      matched += +want;
      assert.equal(accepts(spec, s), want, `/${p}/ on ${JSON.stringify(s)}`);
    }
    for (let seed = 0; seed < 15; seed++) {
      const w = randomWalk(spec, bytesTokenizer(), seed, 60);
      assert.ok(w.complete, `/${p}/ walk incomplete: ${JSON.stringify(w.text)}`);
      assert.ok(re.test(w.text), `/${p}/ walk produced ${JSON.stringify(w.text)}`);
    }
  }
});

test('unsupported regex features are clear errors', () => {
  const tok = bytesTokenizer();
  for (const [p, msg] of [
    ['(a)\\1', /backreferences/],
    ['a(?=b)', /lookaround/],
    ['\\bword', /word boundaries/],
    ['a^b', /\^ and \$/],
    ['(ab', /missing '\)'/],
    ['*a', /nothing to repeat/],
    ['a{5,2}', /max < min/],
  ] as const) {
    assert.throws(() => createConstraint({ kind: 'regex', pattern: p }, tok), msg, p);
  }
});

const SCHEMAS: Record<string, unknown> = {
  person: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'age', 'email'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 12 },
      age: { type: 'integer', minimum: 0, maximum: 130 },
      email: { type: ['string', 'null'], format: 'email' },
    },
  },
  nested: {
    type: 'object',
    additionalProperties: false,
    required: ['items', 'status'],
    properties: {
      status: { enum: ['ok', 'error', 'caf\u00e9'] },
      items: {
        type: 'array',
        minItems: 1,
        maxItems: 3,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['id', 'price', 'tags'],
          properties: {
            id: { type: 'string', pattern: '^[A-Z]{2}-\\d{3}$' },
            price: { type: 'number', minimum: 0, exclusiveMaximum: 1000 },
            tags: { type: 'array', items: { type: 'string', maxLength: 4 }, maxItems: 2 },
            note: { anyOf: [{ type: 'string' }, { type: 'null' }] },
          },
        },
      },
    },
  },
  optional: {
    type: 'object',
    additionalProperties: false,
    required: ['b'],
    properties: { a: { type: 'boolean' }, b: { const: 42 }, c: { type: 'number' }, d: { type: 'null' } },
  },
  tree: {
    $ref: '#/$defs/node',
    $defs: {
      node: {
        type: 'object',
        additionalProperties: false,
        required: ['v', 'kids'],
        properties: {
          v: { type: 'integer', minimum: -5, maximum: 5 },
          kids: { type: 'array', maxItems: 2, items: { $ref: '#/$defs/node' } },
        },
      },
    },
  },
  formats: {
    type: 'object',
    additionalProperties: false,
    required: ['when', 'day', 'at', 'id', 'ip'],
    properties: {
      when: { type: 'string', format: 'date-time' },
      day: { type: 'string', format: 'date' },
      at: { type: 'string', format: 'time' },
      id: { type: 'string', format: 'uuid' },
      ip: { type: 'string', format: 'ipv4' },
    },
  },
  map: { type: 'object', additionalProperties: { type: 'integer', exclusiveMinimum: -3, maximum: 9 } },
  anyValue: {},
  anyOfObjects: {
    anyOf: [
      {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'r'],
        properties: { kind: { const: 'circle' }, r: { type: 'number' } },
      },
      {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'w', 'h'],
        properties: { kind: { const: 'rect' }, w: { type: 'integer' }, h: { type: 'integer' } },
      },
    ],
  },
  scalars: {
    type: 'array',
    items: { anyOf: [{ type: 'boolean' }, { type: 'null' }, { enum: [1, 'two', [3], { four: 4 }] }] },
  },
  unicode: { type: 'string', minLength: 2, maxLength: 6 },
};

function checkWalk(name: string, schema: unknown, text: string, validate: (v: unknown) => boolean): void {
  let value: unknown;
  assert.doesNotThrow(
    () => {
      value = JSON.parse(text);
    },
    `${name}: not JSON: ${JSON.stringify(text)}`,
  );
  const errors = JSON.stringify((validate as { errors?: unknown }).errors);
  assert.ok(validate(value), `${name}: ${text} fails the schema: ${errors}`);
}

for (const [label, tokFn, walks] of [
  ['bytes', bytesTokenizer, 12],
  ['char', jsonCharTokenizer, 12],
] as const) {
  test(`JSON schema random walks validate (${label} vocabulary)`, () => {
    const tok = tokFn();
    const a = ajv();
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const validate = a.compile(schema as object);
      for (let seed = 1; seed <= walks; seed++) {
        const w = randomWalk({ kind: 'json-schema', schema }, tok, seed * 31 + name.length, 400);
        assert.ok(w.complete, `${name}: incomplete within the budget: ${JSON.stringify(w.text)}`);
        checkWalk(name, schema, w.text, validate);
      }
    }
  });
}

test('JSON schema random walks validate (GPT-2 byte-level BPE) and decode like the tokenizer', () => {
  const tok = gpt2Tokenizer();
  const a = ajv();
  for (const name of ['person', 'nested', 'tree', 'anyOfObjects', 'unicode']) {
    const schema = SCHEMAS[name];
    const validate = a.compile(schema as object);
    for (let seed = 1; seed <= 3; seed++) {
      const w = randomWalk({ kind: 'json-schema', schema }, tok, seed, 200);
      assert.ok(w.complete, `${name}: incomplete: ${JSON.stringify(w.text)}`);
      checkWalk(name, schema, w.text, validate);
      assert.equal(tok.decode(w.ids), w.text, 'the tokenizer decodes the ids to the same text');
    }
  }
  const w = randomWalk({ kind: 'json-object' }, tok, 5, 200);
  assert.ok(w.complete && typeof JSON.parse(w.text) === 'object' && !Array.isArray(JSON.parse(w.text)));
});

test('multi-byte characters split across byte tokens stay valid UTF-8', () => {
  const tok = bytesTokenizer();
  const spec: ConstraintSpec = { kind: 'json-schema', schema: { enum: ['\u65e5\u672c\u8a9e', '\ud83d\ude00!'] } };
  for (let seed = 0; seed < 10; seed++) {
    const w = randomWalk(spec, tok, seed, 50);
    assert.ok(['"\u65e5\u672c\u8a9e"', '"\ud83d\ude00!"'].includes(decodeBytes(tok, w.ids)), w.text);
  }
  // a free string over bytes: every prefix the mask allows must be completable to valid UTF-8
  for (let seed = 0; seed < 20; seed++) {
    const w = randomWalk({ kind: 'json-schema', schema: { type: 'string', maxLength: 8 } }, tok, seed, 80);
    assert.equal(typeof JSON.parse(w.text), 'string');
  }
});

test('json_object mode gives any JSON object', () => {
  for (const tok of [bytesTokenizer(), jsonCharTokenizer()]) {
    for (let seed = 0; seed < 25; seed++) {
      const w = randomWalk({ kind: 'json-object' }, tok, seed, 200);
      assert.ok(w.complete);
      const v = JSON.parse(w.text);
      assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), w.text);
    }
  }
});

test('accepts the canonical serialisation of valid instances and rejects invalid ones', () => {
  const person = { kind: 'json-schema', schema: SCHEMAS.person } as const;
  assert.ok(accepts(person, '{"name":"Al","age":30,"email":null}'));
  assert.ok(accepts(person, '{\n  "name": "Al",\n  "age": 30,\n  "email": "a.b@c.org"\n}'));
  assert.ok(!accepts(person, '{"name":"","age":30,"email":null}'), 'minLength');
  assert.ok(!accepts(person, '{"name":"Al","age":131,"email":null}'), 'maximum');
  assert.ok(!accepts(person, '{"name":"Al","age":30}'), 'required');
  assert.ok(!accepts(person, '{"name":"Al","age":30,"email":null,"x":1}'), 'additionalProperties');
  assert.ok(!accepts(person, '{"name":"Al","age":30.5,"email":null}'), 'integer');
  const opt = { kind: 'json-schema', schema: SCHEMAS.optional } as const;
  for (const ok of ['{"b":42}', '{"a":true,"b":42}', '{"b":42,"d":null}', '{"a":false,"b":42,"c":-1.5e3,"d":null}']) {
    assert.ok(accepts(opt, ok), ok);
  }
  for (const bad of ['{}', '{"a":true}', '{"b":42,}', '{,"b":42}', '{"b":43}']) assert.ok(!accepts(opt, bad), bad);
  const str = { kind: 'json-schema', schema: { type: 'string', maxLength: 2 } } as const;
  for (const ok of ['""', '"ab"', '"\\n\\u00e9"', '"\\"\\\\"', '"\ud83d\ude00"']) assert.ok(accepts(str, ok), ok);
  for (const bad of ['"abc"', '"\\ud83d"', '"\n"', '"\\x"']) assert.ok(!accepts(str, bad), bad);
  const tree = { kind: 'json-schema', schema: SCHEMAS.tree } as const;
  assert.ok(accepts(tree, '{"v":1,"kids":[{"v":-5,"kids":[]},{"v":5,"kids":[{"v":0,"kids":[]}]}]}'));
  assert.ok(!accepts(tree, '{"v":1,"kids":[{"v":1,"kids":[]},{"v":1,"kids":[]},{"v":1,"kids":[]}]}'), 'maxItems');
});

test('a character vocabulary that cannot write the schema is an error up front, naming the characters', () => {
  const tok = shakespeareTokenizer();
  assert.throws(() => createConstraint({ kind: 'json-object' }, tok), /cannot produce any output.*no token for "\{"/s);
  const person = { kind: 'json-schema', schema: SCHEMAS.person } as const;
  assert.throws(() => createConstraint(person, tok), /character vocabulary cannot produce/);
  assert.throws(() => createConstraint({ kind: 'regex', pattern: 'x[0-2]+' }, tok), /no token for "0", "1", "2"/);
  // what it can spell still works, and branches it cannot spell are dropped rather than dead ends
  for (let seed = 0; seed < 20; seed++) {
    const w = randomWalk({ kind: 'regex', pattern: '(ROMEO|JULIET|PAGE 7): [a-z ]{2,8}[.!]' }, tok, seed, 40);
    assert.match(w.text, /^(ROMEO|JULIET): [a-z ]{2,8}[.!]$/);
  }
  const digits = randomWalk({ kind: 'regex', pattern: '\\d{1,3}' }, tok, 3, 10);
  assert.match(digits.text, /^3{1,3}$/, 'the only digit this vocabulary has');
});

test('schema errors name the keyword and path', () => {
  const tok = bytesTokenizer();
  const bad: [unknown, RegExp][] = [
    [
      { type: 'object', properties: { a: { oneOf: [{ type: 'string' }] } } },
      /#\/properties\/a\/oneOf: keyword "oneOf" is not supported/,
    ],
    [{ type: 'string', minLength: -1 }, /minLength: must be a non-negative integer/],
    [{ type: 'object', properties: {}, required: ['x'] }, /required property "x" is not in properties/],
    [{ $ref: '#/$defs/missing' }, /does not resolve/],
    [{ type: 'strng' }, /unknown type "strng"/],
    [{ type: 'array', uniqueItems: true }, /"uniqueItems" is not supported/],
    [{ type: 'integer', minimum: 5, maximum: 4 }, /no number satisfies/],
    [{ type: 'string', format: 'hostname' }, /format "hostname" is not supported/],
    [{ $ref: '#', type: 'object' }, /combining "\$ref" with "type"/],
    [
      {
        $defs: {
          a: { type: 'object', properties: { x: { $ref: '#/$defs/a' } }, required: ['x'], additionalProperties: false },
        },
        $ref: '#/$defs/a',
      },
      /matches no finite output/,
    ],
    [{ anyOf: [{ $ref: '#' }, { type: 'null' }] }, /left-recursive/],
  ];
  for (const [schema, msg] of bad) {
    assert.throws(
      () => {
        const c = createConstraint({ kind: 'json-schema', schema }, tok);
        c.allowedIds();
      },
      msg,
      JSON.stringify(schema),
    );
  }
  assert.throws(() => createConstraint({ kind: 'json-object' }, tok, { eosIds: [999] }), /eos id 999 is outside/);
});

test('EOS only when complete; advance refuses disallowed tokens; clones are independent', () => {
  const tok = jsonCharTokenizer(); // no EOS of its own: use the id of '~' as one
  const eos = tok.tokenToId('~')!;
  const c = createConstraint({ kind: 'regex', pattern: 'ab+' }, tok, { eosIds: [eos] });
  const id = (ch: string) => tok.tokenToId(ch)!;
  assert.deepEqual([...c.allowedIds()], [id('a')]);
  assert.throws(() => c.advance(id('b')), /token \d+ "b" is not allowed here/);
  assert.throws(() => c.advance(eos), /before the value is complete/);
  c.advance(id('a'));
  const fork = c.clone();
  c.advance(id('b'));
  assert.ok(c.isComplete() && !fork.isComplete());
  assert.deepEqual(
    [...c.allowedIds()].sort((x, y) => x - y),
    [id('b'), eos].sort((x, y) => x - y),
  );
  assert.equal(c.mask()[eos], 1);
  assert.equal(fork.mask()[eos], 0);
  c.advance(eos);
  assert.ok(c.isFinished() && c.allowedIds().length === 0);
  const logits = new Float32Array(tok.vocabSize).fill(1);
  fork.maskLogits(logits);
  assert.deepEqual(
    [...logits.keys()].filter((i) => logits[i] > -Infinity),
    [id('b')],
  );
});

test('a token budget always closes the value in time', () => {
  const tok = bytesTokenizer();
  const a = ajv();
  for (const name of ['nested', 'tree', 'person', 'anyValue']) {
    const schema = SCHEMAS[name];
    const validate = a.compile(schema as object);
    const need = createConstraint({ kind: 'json-schema', schema }, tok).tokensToComplete();
    for (const budget of [need, need + 1, need + 7, need + 40]) {
      for (let seed = 0; seed < 4; seed++) {
        const w = randomWalk({ kind: 'json-schema', schema }, tok, seed + budget, budget);
        assert.ok(w.complete && w.steps <= budget, `${name} budget ${budget}: ${JSON.stringify(w.text)}`);
        checkWalk(name, schema, w.text, validate);
      }
    }
  }
});

test('compiled constraints are cached per tokenizer and spec', () => {
  const tok = bytesTokenizer();
  const spec: ConstraintSpec = { kind: 'json-schema', schema: SCHEMAS.person };
  const copy: ConstraintSpec = { kind: 'json-schema', schema: JSON.parse(JSON.stringify(SCHEMAS.person)) };
  assert.equal(compileConstraint(spec, tok), compileConstraint(copy, tok));
  assert.notEqual(compileConstraint(spec, tok), compileConstraint(spec, tok, { whitespace: 'compact' }));
  const w = randomWalk(spec, tok, 9, 200, { whitespace: 'compact' });
  const outside = /\s(?=(?:[^"]*"[^"]*")*[^"]*$)/;
  assert.ok(!outside.test(w.text), `compact output has no whitespace outside strings: ${w.text}`);
});

test('tool calls: arguments validate against the chosen function; prefix/suffix text wraps the JSON', () => {
  const tools: ToolDefinition[] = [
    {
      type: 'function',
      function: {
        name: 'calculator',
        parameters: {
          type: 'object',
          additionalProperties: false,
          required: ['expr'],
          properties: { expr: { type: 'string', pattern: '^[0-9+*/() -]{1,12}$' } },
        },
      },
    },
    {
      type: 'function',
      function: {
        name: 'tree_size',
        parameters: {
          $ref: '#/$defs/t',
          $defs: {
            t: {
              type: 'object',
              additionalProperties: false,
              required: ['kids'],
              properties: { kids: { type: 'array', maxItems: 2, items: { $ref: '#/$defs/t' } } },
            },
          },
        },
      },
    },
  ];
  const a = ajv();
  const byName = new Map(tools.map((t) => [t.function.name, a.compile(t.function.parameters as object)]));
  const tok = bytesTokenizer();
  const seen = new Set<string>();
  for (let seed = 0; seed < 16; seed++) {
    const parallel = seed % 4 === 3;
    const schema = toolCallSchema(tools, 'required', { parallel });
    const wrapped = { kind: 'json-schema', schema, prefix: '<tool_call>\n', suffix: '\n</tool_call>' } as const;
    const w = randomWalk(wrapped, tok, seed, 300);
    assert.ok(w.complete);
    const m = /^<tool_call>\n([\s\S]*)\n<\/tool_call>$/.exec(w.text);
    assert.ok(m, w.text);
    const value = JSON.parse(m[1]);
    for (const call of parallel ? value : [value]) {
      seen.add(call.name);
      const validate = byName.get(call.name);
      assert.ok(validate && validate(call.arguments), `${JSON.stringify(call)}: ${JSON.stringify(validate?.errors)}`);
    }
  }
  assert.deepEqual([...seen].sort(), ['calculator', 'tree_size']);
  const named = toolCallSchema(tools, { type: 'function', function: { name: 'tree_size' } });
  for (let seed = 0; seed < 5; seed++) {
    assert.equal(JSON.parse(randomWalk({ kind: 'json-schema', schema: named }, tok, seed, 200).text).name, 'tree_size');
  }
  const nope = { type: 'function', function: { name: 'nope' } } as const;
  assert.throws(() => toolCallSchema(tools, nope), /"nope", which is not among the tools/);
});
