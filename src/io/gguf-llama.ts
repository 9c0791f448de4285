// A LLaMA-architecture GGUF from Hugging Face-named float32 weights (the start of GGUF export): the
// metadata keys llama.cpp requires for `general.architecture = llama`, a SentencePiece-style ("llama")
// vocabulary, and the tensors under llama.cpp's names (convert_hf_to_gguf.py's mapping).
//
// llama.cpp rotates query/key pairs (i, i + 1) (GPT-J style); Hugging Face checkpoints pair i with
// i + hd/2 (rotate_half). As convert_hf_to_gguf.py does, q_proj / k_proj rows are permuted per head
// ((2, hd/2) -> (hd/2, 2)) so both give the same attention scores.
import { gguf, writeGguf, type GgufTensor, type GgufValue } from './gguf.js';

export interface LlamaGgufSpec {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  context: number;
  rmsEps: number;
  ropeTheta: number;
  /** token strings, vocabSize of them (index 0 unknown, 1 begin, 2 end of sequence); default: those three,
   * the 256 byte tokens `<0x00>`..`<0xFF>` (llama.cpp's SPM tokenizer falls back to them for any text, and
   * aborts on a byte it cannot map) and `tok<i>` */
  tokens?: readonly string[];
  name?: string;
}

/** token type codes of llama.cpp's vocabulary */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

/** metadata of a llama GGUF (keys of llama.cpp's llama-arch.cpp / gguf-py constants) */
export function llamaMetadata(s: LlamaGgufSpec): Map<string, GgufValue> {
  const tokens = s.tokens ?? defaultTokens(s.vocabSize);
  if (tokens.length !== s.vocabSize)
    throw new Error(`gguf llama: ${tokens.length} tokens for vocabSize ${s.vocabSize}`);
  const bytes = new Set(tokens.filter((t) => /^<0x[0-9A-F]{2}>$/.test(t)));
  if (bytes.size !== 256)
    throw new Error(
      `gguf llama: the vocabulary has ${bytes.size} of the 256 byte tokens <0x00>..<0xFF> llama.cpp needs`,
    );
  if (s.hidden % s.heads !== 0 || s.heads % s.kvHeads !== 0)
    throw new Error(`gguf llama: hidden ${s.hidden} / heads ${s.heads} / kvHeads ${s.kvHeads} do not divide`);
  const types = tokens.map((tok, i) =>
    i === 0
      ? TOKEN_TYPE.unknown
      : i < 3
        ? TOKEN_TYPE.control
        : /^<0x[0-9A-F]{2}>$/.test(tok)
          ? TOKEN_TYPE.byte
          : TOKEN_TYPE.normal,
  );
  return new Map<string, GgufValue>([
    ['general.architecture', gguf.str('llama')],
    ['general.name', gguf.str(s.name ?? 'lineage-llama')],
    ['general.alignment', gguf.u32(32)],
    ['general.file_type', gguf.u32(0)], // all float32
    ['llama.context_length', gguf.u32(s.context)],
    ['llama.embedding_length', gguf.u32(s.hidden)],
    ['llama.block_count', gguf.u32(s.layers)],
    ['llama.feed_forward_length', gguf.u32(s.ffn)],
    ['llama.rope.dimension_count', gguf.u32(s.hidden / s.heads)],
    ['llama.rope.freq_base', gguf.f32(s.ropeTheta)],
    ['llama.attention.head_count', gguf.u32(s.heads)],
    ['llama.attention.head_count_kv', gguf.u32(s.kvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', gguf.f32(s.rmsEps)],
    ['llama.vocab_size', gguf.u32(s.vocabSize)],
    ['tokenizer.ggml.model', gguf.str('llama')],
    ['tokenizer.ggml.tokens', gguf.array('string', tokens)],
    [
      'tokenizer.ggml.scores',
      gguf.array(
        'float32',
        tokens.map(() => 0),
      ),
    ],
    ['tokenizer.ggml.token_type', gguf.array('int32', types)],
    ['tokenizer.ggml.unknown_token_id', gguf.u32(0)],
    ['tokenizer.ggml.bos_token_id', gguf.u32(1)],
    ['tokenizer.ggml.eos_token_id', gguf.u32(2)],
    ['tokenizer.ggml.add_bos_token', gguf.bool(false)],
  ]);
}

/** <unk> <s> </s>, the 256 byte tokens, then tok<i> up to n (at least 259) */
export function defaultTokens(n: number): string[] {
  if (n < 259)
    throw new Error(`gguf llama: the default vocabulary needs vocabSize >= 259 (3 special + 256 bytes), got ${n}`);
  const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
  return Array.from({ length: n }, (_, i) => ['<unk>', '<s>', '</s>'][i] ?? (i < 259 ? hex(i - 3) : `tok${i}`));
}

/** rows of W [nHead * hd, in] reordered per head from (2, hd/2) to (hd/2, 2) */
export function permuteRope(w: Float32Array, nHead: number, cols: number): Float32Array {
  const hd = w.length / cols / nHead;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHead; h++)
    for (let i = 0; i < hd / 2; i++)
      for (let j = 0; j < 2; j++) {
        const from = (h * hd + j * (hd / 2) + i) * cols;
        out.set(w.subarray(from, from + cols), (h * hd + 2 * i + j) * cols);
      }
  return out;
}

/** the tensors under llama.cpp's names; `weight(hfName)` returns a row-major float32 array */
export function llamaTensors(s: LlamaGgufSpec, weight: (hfName: string) => Float32Array): GgufTensor[] {
  const { hidden: D, ffn: F, vocabSize: V } = s;
  const kvDim = (D / s.heads) * s.kvHeads;
  const t = (name: string, dims: number[], data: Float32Array): GgufTensor => {
    if (data.length !== dims.reduce((a, b) => a * b, 1))
      throw new Error(`gguf llama: ${name} has ${data.length} values, expected dims [${dims.join(', ')}] (ggml order)`);
    return { name, dims, type: 'F32', data };
  };
  const out = [t('token_embd.weight', [D, V], weight('model.embed_tokens.weight'))];
  for (let i = 0; i < s.layers; i++) {
    const hf = (n: string) => weight(`model.layers.${i}.${n}.weight`);
    out.push(
      t(`blk.${i}.attn_norm.weight`, [D], hf('input_layernorm')),
      t(`blk.${i}.attn_q.weight`, [D, D], permuteRope(hf('self_attn.q_proj'), s.heads, D)),
      t(`blk.${i}.attn_k.weight`, [D, kvDim], permuteRope(hf('self_attn.k_proj'), s.kvHeads, D)),
      t(`blk.${i}.attn_v.weight`, [D, kvDim], hf('self_attn.v_proj')),
      t(`blk.${i}.attn_output.weight`, [D, D], hf('self_attn.o_proj')),
      t(`blk.${i}.ffn_norm.weight`, [D], hf('post_attention_layernorm')),
      t(`blk.${i}.ffn_gate.weight`, [D, F], hf('mlp.gate_proj')),
      t(`blk.${i}.ffn_up.weight`, [D, F], hf('mlp.up_proj')),
      t(`blk.${i}.ffn_down.weight`, [F, D], hf('mlp.down_proj')),
    );
  }
  out.push(
    t('output_norm.weight', [D], weight('model.norm.weight')),
    t('output.weight', [D, V], weight('lm_head.weight')),
  );
  return out;
}

/** a complete llama GGUF file */
export function llamaGguf(s: LlamaGgufSpec, weight: (hfName: string) => Float32Array): Uint8Array {
  return writeGguf({ metadata: llamaMetadata(s), tensors: llamaTensors(s, weight) });
}
