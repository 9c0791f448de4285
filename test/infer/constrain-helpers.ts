// Shared pieces of the constrained-decoding tests: vocabularies of each kind, a seeded random walk over
// the mask, an ajv validator.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { Tokenizer, bytesTokenizer as makeBytesTokenizer, charTokenizer } from '../../src/tokenizers/index.js';
import {
  createConstraint,
  tokenVocab,
  type ConstraintOptions,
  type ConstraintSpec,
} from '../../src/infer/constrain/index.js';

const require = createRequire(import.meta.url);
// ajv-formats is CommonJS: its default export is module.exports itself
const addFormats = require('ajv-formats') as (ajv: Ajv) => Ajv;

export function ajv(): Ajv {
  const a = new Ajv({ strict: false, allErrors: true });
  addFormats(a);
  return a;
}

export const SHAKESPEARE_TOKENIZER = fileURLToPath(
  new URL('../../../models/shakespeare-char/tokenizer.json', import.meta.url),
);
export function shakespeareTokenizer(): Tokenizer {
  return Tokenizer.fromJSON(readFileSync(SHAKESPEARE_TOKENIZER, 'utf8'));
}

/** A character vocabulary that can write JSON: printable ASCII, newline, tab and a few non-ASCII characters. */
export function jsonCharTokenizer(): Tokenizer {
  let corpus = '\n\t';
  for (let c = 32; c < 127; c++) corpus += String.fromCharCode(c);
  return charTokenizer(corpus + 'éü€日本😀');
}

let bytesTok: Tokenizer | null = null;
/** One shared byte tokenizer, so its compiled constraints stay cached across calls. */
export function bytesTokenizer(): Tokenizer {
  return (bytesTok ??= makeBytesTokenizer());
}

/** Deterministic xorshift RNG. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export interface Walk {
  ids: number[];
  text: string;
  complete: boolean;
  steps: number;
}

/**
 * Picks random allowed tokens until the constraint is finished (or `budget` tokens). Tokens that close
 * something (", ], }) or end the sequence get extra weight so walks over open-ended schemas terminate.
 * Throws if a mask is ever empty before the value is complete (a dead end).
 */
export function randomWalk(
  spec: ConstraintSpec,
  tok: Tokenizer,
  seed: number,
  budget = 300,
  opts: ConstraintOptions = {},
): Walk {
  const c = createConstraint(spec, tok, opts);
  const vocab = tokenVocab(tok);
  const eos = new Set(c.compiled.eosIds);
  const closes = (id: number) => eos.has(id) || !!vocab.bytes[id]?.some((b) => b === 0x22 || b === 0x5d || b === 0x7d);
  const pick = (allowed: Int32Array) => {
    // a closing token with probability ~0.3 when one is found among 64 random tries (cheap on 50k-id masks)
    if (r() < 0.3) {
      for (let k = 0; k < 64; k++) {
        const id = allowed[Math.floor(r() * allowed.length)];
        if (closes(id)) return id;
      }
    }
    return allowed[Math.floor(r() * allowed.length)];
  };
  const r = rng(seed);
  const ids: number[] = [];
  let steps = 0;
  for (; steps < budget && !c.isFinished(); steps++) {
    const allowed = c.allowedIds(budget - steps);
    if (!allowed.length) throw new Error(`dead end after ${JSON.stringify(decodeBytes(tok, ids))}`);
    const id = pick(allowed);
    c.advance(id);
    if (!eos.has(id)) ids.push(id);
  }
  return { ids, text: decodeBytes(tok, ids), complete: c.isComplete(), steps };
}

/** The output text from the tokens' byte strings (fatal UTF-8: a broken character is an error). */
export function decodeBytes(tok: Tokenizer, ids: number[]): string {
  const vocab = tokenVocab(tok);
  const parts = ids.map((id) => vocab.bytes[id]!);
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(all);
}

/** Whether the constraint accepts exactly `text`, fed one byte token at a time (bytes tokenizer). */
export function accepts(spec: ConstraintSpec, text: string): boolean {
  const tok = bytesTokenizer();
  const c = createConstraint(spec, tok);
  for (const b of new TextEncoder().encode(text)) {
    if (!c.allowedIds().includes(b)) return false;
    c.advance(b);
  }
  return c.isComplete();
}
