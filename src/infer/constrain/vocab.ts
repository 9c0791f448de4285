// The vocabulary as byte strings: what each token id adds to the output text, decoded once per tokenizer
// and arranged in a byte trie (tokens sharing a prefix share the walk during mask computation).
//
// Supported decoders (how a token's bytes are found):
//   ByteLevel (GPT-2 style byte-to-unicode tokens) -> each character maps back to one byte;
//   Fuse (char vocabularies, e.g. models/shakespeare-char) -> the UTF-8 of the token string;
//   sentencepiece-style Sequence of Replace(▁ -> ' ') / ByteFallback (<0xNN>) / Fuse / Strip -> ▁ becomes
//   ' ' and <0xNN> one byte (a Strip of the very first leading space is not modelled: such decoders drop
//   one leading space of the whole output, which JSON and most regexes do not start with).
// Special added tokens produce no text and are never allowed, except the EOS ids at a complete value.
import { charToByte, parseByteToken, utf8Encode } from '../../tokenizers/unicode.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { ALL, normalize, type Ranges } from './charset.js';

export interface TokenVocab {
  /** bytes each id appends to the output; null = never allowed (special, or produces no text) */
  bytes: (Uint8Array | null)[];
  /** code points the vocabulary can spell one token at a time (see alphabetOf) */
  alphabet: Ranges;
  trie: ByteTrie;
  size: number;
  /** a short description for error messages */
  kind: string;
}

/** Flat trie: node 0 is the root; children in CSR arrays; token ids ending at each node. */
export interface ByteTrie {
  childStart: Int32Array;
  childByte: Uint8Array;
  childNode: Int32Array;
  tokStart: Int32Array;
  tokIds: Int32Array;
}

type DecoderJson = { type?: string; decoders?: DecoderJson[]; pattern?: { String?: string }; content?: string };

function decoderSteps(tok: Tokenizer): string[] {
  const j = tok.decoder?.toJSON() as DecoderJson | undefined;
  if (!j) return [];
  return j.type === 'Sequence' ? (j.decoders ?? []).map((d) => d.type ?? '?') : [j.type ?? '?'];
}

/** How tokens turn into bytes for this tokenizer, or an error naming the unsupported decoder. */
function tokenToBytes(tok: Tokenizer): { kind: string; f: (t: string) => Uint8Array | null } {
  const steps = decoderSteps(tok);
  if (steps.length === 1 && steps[0] === 'ByteLevel') {
    const map = charToByte();
    return {
      kind: 'byte-level BPE',
      f: (t) => {
        const out = new Uint8Array(t.length);
        let n = 0;
        for (const c of t) {
          const b = map.get(c);
          if (b === undefined) return utf8Encode(t); // an added token outside the byte alphabet
          out[n++] = b;
        }
        return out.subarray(0, n);
      },
    };
  }
  if (steps.length === 1 && steps[0] === 'Fuse') return { kind: 'character', f: (t) => utf8Encode(t) };
  const sp = new Set(['Replace', 'ByteFallback', 'Fuse', 'Strip']);
  if (steps.length && steps.every((s) => sp.has(s))) {
    return {
      kind: 'sentencepiece',
      f: (t) => {
        const b = steps.includes('ByteFallback') ? parseByteToken(t) : null;
        return b !== null ? Uint8Array.of(b) : utf8Encode(t.replaceAll('\u2581', ' '));
      },
    };
  }
  const named = steps.length ? steps.join(' + ') : '(none)';
  throw new Error(
    `constrain: tokenizers with decoder ${named} are not supported ` +
      '(supported: ByteLevel, Fuse, sentencepiece-style Replace/ByteFallback/Fuse/Strip)',
  );
}

/**
 * Code points that some single token spells exactly. When every byte 0..255 is a token (byte-level BPE,
 * byte vocabularies, byte fallback) all of Unicode is reachable byte by byte. Otherwise only these
 * characters are used in the automaton: a conservative choice that guarantees every state it reaches can
 * still be completed by the vocabulary (longer tokens are still allowed wherever they fit).
 */
function alphabetOf(bytes: (Uint8Array | null)[]): Ranges {
  const single = new Set<number>();
  for (const b of bytes) if (b && b.length === 1) single.add(b[0]);
  if (single.size === 256) return ALL;
  const chars: number[] = [];
  const dec = new TextDecoder('utf-8', { fatal: true });
  for (const b of bytes) {
    if (!b || !b.length || b.length > 4) continue;
    try {
      const cps = Array.from(dec.decode(b));
      if (cps.length === 1) chars.push(cps[0].codePointAt(0)!, cps[0].codePointAt(0)!);
    } catch {
      /* a partial UTF-8 sequence: only useful with the other bytes */
    }
  }
  return normalize(chars);
}

function buildTrie(bytes: (Uint8Array | null)[]): ByteTrie {
  // one hash map of edges (node * 256 + byte -> child) instead of a map per node: far less garbage
  const edge = new Map<number, number>();
  const parent: number[] = [-1],
    byteOf: number[] = [0],
    endNode = new Int32Array(bytes.length).fill(-1);
  bytes.forEach((b, id) => {
    if (!b || !b.length) return;
    let n = 0;
    for (const x of b) {
      let c = edge.get(n * 256 + x);
      if (c === undefined) {
        c = parent.length;
        parent.push(n);
        byteOf.push(x);
        edge.set(n * 256 + x, c);
      }
      n = c;
    }
    endNode[id] = n;
  });
  const N = parent.length;
  const childStart = new Int32Array(N + 1),
    tokStart = new Int32Array(N + 1);
  for (let c = 1; c < N; c++) childStart[parent[c] + 1]++;
  for (const n of endNode) if (n >= 0) tokStart[n + 1]++;
  for (let n = 0; n < N; n++) {
    childStart[n + 1] += childStart[n];
    tokStart[n + 1] += tokStart[n];
  }
  const childByte = new Uint8Array(N - 1),
    childNode = new Int32Array(N - 1),
    tokIds = new Int32Array(tokStart[N]);
  const fillC = childStart.slice(0, N),
    fillT = tokStart.slice(0, N);
  for (let c = 1; c < N; c++) {
    const k = fillC[parent[c]]++;
    childByte[k] = byteOf[c];
    childNode[k] = c;
  }
  endNode.forEach((n, id) => {
    if (n >= 0) tokIds[fillT[n]++] = id;
  });
  return { childStart, childByte, childNode, tokStart, tokIds };
}

const cache = new WeakMap<Tokenizer, TokenVocab>();

/** The byte view of a tokenizer's vocabulary (cached per tokenizer). */
export function tokenVocab(tok: Tokenizer): TokenVocab {
  const hit = cache.get(tok);
  if (hit) return hit;
  const { kind, f } = tokenToBytes(tok);
  const size = tok.vocabSize;
  const special = new Set(tok.addedTokens.filter((t) => t.special).map((t) => t.id));
  const bytes: (Uint8Array | null)[] = [];
  for (let id = 0; id < size; id++) {
    const t = tok.idToToken(id);
    bytes.push(t === undefined || special.has(id) ? null : f(t));
  }
  const v: TokenVocab = { bytes, alphabet: alphabetOf(bytes), trie: buildTrie(bytes), size, kind };
  cache.set(tok, v);
  return v;
}
