// A decode step with no tensor machinery: the forward pass of a plain pre-norm decoder (Llama, Mistral,
// Qwen2, GPT-2 and their kin) in inference, as a fixed list of backend matmul kernels over preallocated
// buffers, with the small per-token work (norms, RoPE, residual adds, activations, bias adds) done on the
// host over the buffers' zero-copy views. llama.cpp's graph-once approach, for the shapes decoding runs.
//
// Why: at decoding sizes (one token, or a batch of a few dozen) a forward through `Module.forward` makes
// some 40 tensors per layer (views, reshapes, RoPE's slices and concat, scope bookkeeping), each a JS
// object plus a backend call; profiles of single-stream decoding put that at a quarter to a half of a
// step (docs/ENGINE.md). Here a layer is 6-7 matmul calls and one attention call.
//
// It is an optional fast path beside the reference one (`model.forward`): `FastDecoder.create` returns
// null (with the reason in `FastDecoder.why`) for anything it does not cover exactly: another block
// wiring, MoE, MLA, qk-norm, soft-caps, µP scalars, parameters it does not know, a training-mode model,
// non-float32 weights, or a backend whose buffers are not stably host-visible (wasm memory can move when it
// grows). Quantized projections (QuantLinear, q8_0 / q4_0 blocks) run the same `quantMatmul` kernel as
// their forward does; a LoRA adapter (LoraLinear, on a float or quantized base) adds scaling * B (A x) after
// its base, as its forward does, unless it is merged into the base weight. The tests compare its logits with
// the reference path's.
//
// Notation: T tokens of the step, D width, nh / nkv query / key-value heads, hs head size, F FFN width,
// V vocabulary, R logit rows wanted.
import type { Backend, Buf, KernelTable, MatmulParams, View } from '../backend/backend.js';
import { kernelFor } from '../backend/dispatch.js';
import { getBackend } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { DecoderLM } from '../models/decoder.js';
import type { LanguageModel } from '../models/model.js';
import { layerFfn, type Activation, type DecoderConfig, type NormConfig } from '../models/config.js';
import { ropeInvFreq, type RopeSpec } from '../nn/positions.js';
import { QuantLinear } from '../nn/quant.js';
import { LoraLinear } from '../nn/lora.js';
import type { QuantBits } from '../ops/index.js';

/** the attention of one layer over the caller's KV store: q [nh, T, hs], k/v [nkv, T, hs] -> [nh, T, hs] */
export type FastAttend = (
  layer: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  scale: number,
) => Float32Array;

/** one step: T token ids at their absolute positions */
export interface FastStep {
  ids: Int32Array;
  positions: Int32Array;
  /** the length of token t's sequence after this step (dynamic NTK RoPE scales by it) */
  seqLen: (t: number) => number;
  /** tokens whose logits are wanted, in order */
  rows: Int32Array;
}

/** a weight as the matmul kernel reads it: W [N, K] (Linear, transB) or [K, N] (Conv1D) */
interface Weight {
  /** float32 [N, K] (transB) or [K, N]; a quantized weight's packed blocks (int32 words) */
  view: View;
  transB: boolean;
  N: number;
  K: number;
  bias: Float32Array | null;
  /** q8_0 / q4_0 blocks, run by quantMatmul */
  bits: QuantBits | null;
  /** an unmerged LoRA adapter on this projection: y += scaling * B (A x), A [r, K], B [N, r] */
  lora: { a: Weight; b: Weight; scaling: number } | null;
}

interface HostNorm {
  kind: 'rms' | 'layer';
  weight: View;
  bias: View | null;
  eps: number;
}

interface FastLayer {
  norm1: HostNorm;
  norm2: HostNorm;
  /** q | k | v in one weight (GPT-2 c_attn, Phi-3 qkv_proj), else separate */
  qkv: Weight | null;
  q: Weight | null;
  k: Weight | null;
  v: Weight | null;
  o: Weight;
  ffn:
    | { kind: 'glu'; act: Activation; gate: Weight | null; up: Weight | null; gateUp: Weight | null; down: Weight }
    | { kind: 'mlp'; act: Activation; up: Weight; down: Weight };
}

/** a grown-on-demand float32 backend buffer and its host view */
interface Scratch {
  buf: Buf;
  host: Float32Array;
}
/** a step result: its backend buffer and the host view of exactly its elements */
type Step = Scratch;
/** a step's RoPE tables [T, half] on the host, and as backend buffers (null below HOST_ROWS tokens) */
interface RopeTables {
  host: { cos: Float32Array; sin: Float32Array; half: number };
  cos: Scratch | null;
  sin: Scratch | null;
}
/** steps of fewer tokens rotate and transpose on the host: a kernel call costs more than the copies there
 * (measured with bench/fast-step.ts) */
const HOST_ROWS = 16;

/** backends whose buffers' host views never move (wasm memory can grow and detach them) */
const stableViews = (be: Backend) => be.name.startsWith('native') || be.name.startsWith('reference');

export class FastDecoder {
  /** why the last `create` returned null */
  static why = '';

  private readonly scratch = new Map<string, Scratch>();
  /** host-only step arrays (the fused q|k|v split, the head transposes), grown on demand: a fresh typed
   * array per layer per step cost more than the copies themselves at decoding sizes */
  private readonly hostScratch = new Map<string, Float32Array>();
  /** the parameters read in place (a replaced parameter is disposed: `stale` then says so) */
  private sources: Tensor[] = [];
  private readonly matmul: (a: View, b: View, out: View, p: MatmulParams) => void;
  private readonly quantMatmul: KernelTable['quantMatmul'];
  private readonly ropeHeads: (...a: Parameters<KernelTable['ropeHeads']>) => void;
  private readonly copy: (...a: Parameters<KernelTable['copy']>) => void;
  private readonly k: {
    [K in 'rmsNorm' | 'layerNorm' | 'unary' | 'binary']: (...a: Parameters<KernelTable[K]>) => void;
  };
  private readonly rope: RopeSpec | null;
  private disposed = false;

  private constructor(
    readonly config: DecoderConfig,
    private readonly backend: Backend,
    private readonly layers: FastLayer[],
    private readonly embed: Float32Array,
    private readonly positionsTable: Float32Array | null,
    private readonly finalNorm: HostNorm | null,
    private readonly head: Weight,
  ) {
    this.matmul = kernelFor(backend, 'matmul');
    this.quantMatmul = kernelFor(backend, 'quantMatmul');
    this.ropeHeads = kernelFor(backend, 'ropeHeads');
    this.copy = kernelFor(backend, 'copy');
    this.k = {
      rmsNorm: kernelFor(backend, 'rmsNorm'),
      layerNorm: kernelFor(backend, 'layerNorm'),
      unary: kernelFor(backend, 'unary'),
      binary: kernelFor(backend, 'binary'),
    };
    const p = config.positions;
    const a = config.decoder.block.attention;
    this.rope =
      p.kind === 'rope' && a.kind !== 'mla'
        ? { theta: p.theta, dim: p.dim ?? a.headDim, scaling: p.scaling, maxContext: config.maxContext }
        : null;
  }

  /** the fast path for `model`, or null (reason in FastDecoder.why) where it does not apply exactly */
  static create(model: LanguageModel, backend: Backend = getBackend()): FastDecoder | null {
    const fail = (why: string) => ((FastDecoder.why = why), null);
    if (!(model instanceof DecoderLM)) return fail('not a DecoderLM');
    if (model.training) return fail('the model is in training mode');
    if (!stableViews(backend)) return fail(`backend ${backend.name} has no stable host views`);
    const c = model.config;
    const b = c.decoder.block;
    const a = b.attention;
    if (b.residual !== 'pre') return fail(`residual "${b.residual}"`);
    if (a.kind === 'mla' || a.qkNorm || a.softcap) return fail('MLA, qk-norm or attention soft-cap');
    if (b.norm.kind === 'rmsnorm' && b.norm.unitOffset) return fail("Gemma's unit-offset RMSNorm");
    if (c.mup || c.logitSoftcap || c.embedNorm || c.vision || c.mtp)
      return fail('µP, logit soft-cap, embedding norm, vision or MTP');
    if (c.family === 'openai-gpt') return fail('openai-gpt reads "gelu" as its tanh form');
    if (c.positions.kind !== 'rope' && c.positions.kind !== 'learned' && c.positions.kind !== 'none')
      return fail(`positions "${c.positions.kind}"`);
    const params = new Map(model.namedParameters());
    const take = (name: string): Tensor | null => {
      const t = params.get(name) ?? null;
      params.delete(name);
      return t;
    };
    try {
      const host = (name: string): Float32Array => hostOf(backend, need(take(name), name));
      const quantSources: Tensor[] = [];
      const weight = (path: string, conv1d: boolean, bias: boolean): Weight => {
        const m = moduleAt(model, path);
        if (m instanceof LoraLinear) {
          // the base's parameters live under base_layer; a merged adapter is already in the base weight (its
          // A and B are still read: every parameter must be accounted for)
          const base = weight(`${path}.base_layer`, conv1d, bias);
          const a = weight(`${path}.lora_A`, false, false);
          const b = weight(`${path}.lora_B`, false, false);
          return { ...base, lora: m.merged ? null : { a, b, scaling: m.scaling } };
        }
        if (m instanceof QuantLinear) {
          // [N, K] blocks whatever layer it replaced (a Conv1D's weight was transposed before quantizing)
          const words = m.q.packed;
          if (words.storage.buf.backend !== backend || !words.isContiguous)
            throw new Error('quantized blocks on another backend');
          quantSources.push(words);
          return {
            view: words.view(),
            transB: true,
            N: m.outFeatures,
            K: m.inFeatures,
            bias: bias ? host(`${path}.bias`) : null,
            bits: m.bits,
            lora: null,
          };
        }
        const w = need(take(`${path}.weight`), `${path}.weight`);
        hostOf(backend, w); // checks dtype, layout and backend
        const [d0, d1] = w.shape as [number, number];
        return {
          view: w.view(),
          transB: !conv1d,
          N: conv1d ? d1 : d0,
          K: conv1d ? d0 : d1,
          bias: bias ? host(`${path}.bias`) : null,
          bits: null,
          lora: null,
        };
      };
      const param = (name: string): View => {
        const t = need(take(name), name);
        hostOf(backend, t); // checks dtype, layout and backend
        return t.view();
      };
      const norm = (path: string, cfg: NormConfig): HostNorm => ({
        kind: cfg.kind === 'rmsnorm' ? 'rms' : 'layer',
        weight: param(`${path}.weight`),
        bias: cfg.kind === 'layernorm' && cfg.bias ? param(`${path}.bias`) : null,
        eps: cfg.eps,
      });
      const n = model.naming;
      const root = `${n.root}`;
      const layers: FastLayer[] = [];
      for (let i = 0; i < c.decoder.layers; i++) {
        const pre = `${root}.${n.layers}.${i}`;
        const an = n.attnNames;
        const at = `${pre}.${n.attn}`;
        const conv = !!an.fused && !an.fusedLinear; // GPT-2's Conv1D projections
        const f = layerFfn(b.ffn, i);
        const ff = `${pre}.${n.ffn}`;
        let ffn: FastLayer['ffn'];
        if (f.kind === 'glu') {
          const g = n.glu;
          ffn = g?.fused
            ? {
                kind: 'glu',
                act: f.act,
                gate: null,
                up: null,
                gateUp: weight(`${ff}.${g.fused}`, false, f.bias),
                down: weight(`${ff}.${g.down}`, false, f.bias),
              }
            : {
                kind: 'glu',
                act: f.act,
                gate: weight(`${ff}.${g?.gate ?? 'gate_proj'}`, false, f.bias),
                up: weight(`${ff}.${g?.up ?? 'up_proj'}`, false, f.bias),
                gateUp: null,
                down: weight(`${ff}.${g?.down ?? 'down_proj'}`, false, f.bias),
              };
        } else if (f.kind === 'mlp') {
          const mc = !!n.mlp.conv1d;
          ffn = {
            kind: 'mlp',
            act: f.act,
            up: weight(`${ff}.${n.mlp.up}`, mc, f.bias),
            down: weight(`${ff}.${n.mlp.down}`, mc, f.bias),
          };
        } else return fail(`layer ${i}: FFN "${f.kind}"`);
        layers.push({
          norm1: norm(`${pre}.${n.norm1}`, b.norm),
          norm2: norm(`${pre}.${n.norm2}`, b.norm),
          qkv: an.fused ? weight(`${at}.${an.fused}`, conv, a.qkvBias) : null,
          q: an.fused ? null : weight(`${at}.${an.q}`, false, a.qkvBias),
          k: an.fused ? null : weight(`${at}.${an.k}`, false, a.qkvBias),
          v: an.fused ? null : weight(`${at}.${an.v}`, false, a.qkvBias),
          o: weight(`${at}.${an.o}`, conv, a.outBias),
          ffn,
        });
      }
      const embedT = need(take(`${root}.${n.embed}.weight`), 'embeddings');
      const embed = hostOf(backend, embedT);
      const positions = c.positions.kind === 'learned' ? host(`${root}.${n.positions}.weight`) : null;
      const finalNorm = c.decoder.finalNorm ? norm(`${root}.${n.finalNorm}`, c.decoder.finalNorm) : null;
      const head: Weight = c.tieEmbeddings
        ? { view: embedT.view(), transB: true, N: c.vocabSize, K: c.hidden, bias: null, bits: null, lora: null }
        : weight('lm_head', false, false);
      if (params.size > 0) return fail(`parameters it does not know: ${[...params.keys()].slice(0, 3).join(', ')}`);
      const fast = new FastDecoder(c, backend, layers, embed, positions, finalNorm, head);
      fast.sources = [...model.parameters(), ...quantSources];
      return fast;
    } catch (e) {
      return fail((e as Error).message);
    }
  }

  /** true once a parameter it reads was disposed (replaced by loadStateDict / setParameter, or the model
   * disposed): make a new one */
  get stale(): boolean {
    return this.sources.some((t) => t.isDisposed);
  }

  /** frees the step buffers (the weights stay the model's) */
  dispose(): void {
    for (const s of this.scratch.values()) this.backend.free(s.buf);
    this.scratch.clear();
    this.hostScratch.clear();
    this.disposed = true;
  }

  /** logits [R, V] of the wanted rows, after running the step's tokens through every layer */
  forward(step: FastStep, attend: FastAttend): Float32Array {
    if (this.disposed) throw new Error('FastDecoder: used after dispose()');
    if (this.stale)
      throw new Error('FastDecoder: a parameter it reads was disposed (weights replaced); make a new one');
    const c = this.config;
    const a = c.decoder.block.attention as { heads: number; kvHeads: number; headDim: number; scale: number | null };
    const T = step.ids.length;
    const D = c.hidden;
    const [nh, nkv, hs] = [a.heads, a.kvHeads, a.headDim];
    const scale = a.scale ?? 1 / Math.sqrt(hs);
    const x = this.embedRows(step); // (T, D) residual stream
    const rope = this.rope ? ropeCosSin(this.rope, step) : null;
    const cs = rope ? this.ropeTables(rope, T) : null;
    const hn = this.buf('hn', T * D);
    const att = this.buf('att', T * nh * hs);
    for (let i = 0; i < this.layers.length; i++) {
      const L = this.layers[i]!;
      this.norm(L.norm1, x, hn, T);
      // q, k, v rotated and made head-major in one pass, into step buffers the attention only reads (heads():
      // the backend's ropeHeads, or the host for short steps; a fused q|k|v weight is split on the host)
      let hq: Float32Array, hk: Float32Array, hv: Float32Array;
      if (!L.qkv) {
        hq = this.heads('hq', this.project('q', L.q!, hn, T), T, nh, hs, cs); // (nh, T, hs)
        hk = this.heads('hk', this.project('k', L.k!, hn, T), T, nkv, hs, cs); // (nkv, T, hs)
        hv = this.heads('hv', this.project('v', L.v!, hn, T), T, nkv, hs, null);
      } else {
        const [q, k, v] = this.qkv(L, hn, T, nh, nkv, hs); // (T, nh*hs), (T, nkv*hs) x2
        hq = headsFirst(q, T, nh, hs, rope, this.buf('hq', T * nh * hs).host);
        hk = headsFirst(k, T, nkv, hs, rope, this.buf('hk', T * nkv * hs).host);
        hv = headsFirst(v, T, nkv, hs, null, this.buf('hv', T * nkv * hs).host);
      }
      const o = attend(i, hq, hk, hv, scale); // (nh, T, hs)
      this.tokensFirst(o, T, nh, hs, att); // (T, nh*hs)
      this.addInto(x, this.project('o', L.o, att, T), T * D);
      this.norm(L.norm2, x, hn, T);
      this.addInto(x, this.ffn(L, hn, T), T * D);
    }
    return this.logits(x, step.rows, T);
  }

  /** token (+ learned position) embeddings (T, D) in the residual buffer */
  private embedRows(step: FastStep): Scratch {
    const c = this.config;
    const D = c.hidden;
    const T = step.ids.length;
    const xs = this.buf('x', T * D);
    const x = xs.host;
    const s = c.embedScale === 'sqrt-hidden' ? Math.fround(Math.sqrt(D)) : 1;
    const off = c.positions.kind === 'learned' ? c.positions.offset : 0;
    const P = this.positionsTable;
    for (let t = 0; t < T; t++) {
      const id = step.ids[t]!;
      if (!(id >= 0 && id < c.vocabSize))
        throw new Error(`FastDecoder: token id ${id} at ${t} is outside the vocabulary [0, ${c.vocabSize})`);
      const e = id * D;
      for (let d = 0; d < D; d++) x[t * D + d] = this.embed[e + d]! * s;
      if (!P) continue;
      const p = (step.positions[t]! + off) * D;
      if (p + D > P.length)
        throw new Error(
          `FastDecoder: position ${step.positions[t]} exceeds the learned table (maxContext ${c.maxContext})`,
        );
      for (let d = 0; d < D; d++) x[t * D + d] = Math.fround(x[t * D + d]! + P[p + d]!);
    }
    return xs;
  }

  /** (h, T, hs) -> (T, h*hs) into out: the backend's strided copy from a step buffer (one memcpy in) for
   * prefill-sized steps, a host loop for a few tokens (where the call costs more than the copy) */
  private tokensFirst(o: Float32Array, T: number, h: number, hs: number, out: Scratch): void {
    if (T < HOST_ROWS) return tokensFirst(o, T, h, hs, out.host);
    const src = this.buf('heads', h * T * hs);
    src.host.set(o.subarray(0, h * T * hs));
    this.copy(
      { buf: src.buf, shape: [T, h, hs], strides: [hs, T * hs, 1], offset: 0 },
      { buf: out.buf, shape: [T, h, hs], strides: [h * hs, hs, 1], offset: 0 },
    );
  }

  /** the step's RoPE cos / sin [T, half] in backend buffers (the ropeHeads kernel reads them) */
  private ropeTables(r: { cos: Float32Array; sin: Float32Array; half: number }, T: number): RopeTables {
    if (T < HOST_ROWS) return { host: r, cos: null, sin: null };
    const [cos, sin] = [this.buf('ropeCos', T * r.half), this.buf('ropeSin', T * r.half)];
    cos.host.set(r.cos);
    sin.host.set(r.sin);
    return { host: r, cos, sin };
  }

  /** a projection's rows (T, h*hs) -> (h, T, hs) in step buffer `name`, rotated where `cs` is given: by
   * the backend's ropeHeads, or on the host for a few tokens (where the call costs more than the work) */
  private heads(name: string, x: Step, T: number, h: number, hs: number, cs: RopeTables | null): Float32Array {
    const out = this.buf(name, h * T * hs);
    if (T < HOST_ROWS) return headsFirst(x.host, T, h, hs, cs ? cs.host : null, out.host);
    const half = cs ? cs.host.half : 0;
    // no rotation (half = 0): the tables are empty views, of any buffer
    const tab = (s: Scratch | null | undefined) => flat((s ?? out).buf, T * half);
    this.ropeHeads(
      { buf: x.buf, shape: [T, h, hs], strides: [h * hs, hs, 1], offset: 0 },
      tab(cs?.cos),
      tab(cs?.sin),
      { buf: out.buf, shape: [h, T, hs], strides: [T * hs, hs, 1], offset: 0 },
      { T, H: h, D: hs, half },
    );
    return out.host.subarray(0, h * T * hs);
  }

  /** q, k, v rows of the normed input through a fused q|k|v weight: (T, nh*hs), (T, nkv*hs), (T, nkv*hs) host arrays */
  private qkv(L: FastLayer, hn: Scratch, T: number, nh: number, nkv: number, hs: number): Float32Array[] {
    const all = this.project('qkv', L.qkv!, hn, T).host; // (T, (nh + 2 nkv) hs)
    const W = (nh + 2 * nkv) * hs;
    const [Q, KV] = [nh * hs, nkv * hs];
    // one token: q | k | v are already contiguous runs of the row (attend copies them before the next
    // projection reuses the buffer)
    if (T === 1) return [all.subarray(0, Q), all.subarray(Q, Q + KV), all.subarray(Q + KV, W)];
    const [q, k, v] = [
      this.hostBuf('q', T * nh * hs),
      this.hostBuf('k', T * nkv * hs),
      this.hostBuf('v', T * nkv * hs),
    ];
    for (let t = 0; t < T; t++) {
      const o = t * W;
      for (let d = 0; d < Q; d++) q[t * Q + d] = all[o + d]!;
      for (let d = 0; d < KV; d++) k[t * KV + d] = all[o + Q + d]!;
      for (let d = 0; d < KV; d++) v[t * KV + d] = all[o + Q + KV + d]!;
    }
    return [q, k, v];
  }

  /** the FFN of the normed rows: act(up) or act(gate) * up, then down, with the backend's elementwise kernels
   * (the same ones the reference path runs, element by element whatever T is) */
  private ffn(L: FastLayer, hn: Scratch, T: number): Step {
    const f = L.ffn;
    if (f.kind === 'mlp') {
      const u = this.project('up', f.up, hn, T);
      const n = T * f.up.N;
      this.k.unary(f.act, flat(u.buf, n), flat(u.buf, n));
      return this.project('down', f.down, u, T);
    }
    const F = f.down.K;
    const n = T * F;
    const h = this.buf('ffn', n);
    if (f.gateUp) {
      const gu = this.project('gateUp', f.gateUp, hn, T); // (T, 2F): gate | up per row
      const g = this.buf('gate', n);
      const u = this.buf('up', n);
      for (let t = 0; t < T; t++) {
        g.host.set(gu.host.subarray(t * 2 * F, t * 2 * F + F), t * F);
        u.host.set(gu.host.subarray(t * 2 * F + F, (t + 1) * 2 * F), t * F);
      }
      this.k.unary(f.act, flat(g.buf, n), flat(g.buf, n));
      this.k.binary('mul', flat(g.buf, n), flat(u.buf, n), flat(h.buf, n));
    } else {
      const g = this.project('gate', f.gate!, hn, T);
      const u = this.project('up', f.up!, hn, T);
      this.k.unary(f.act, flat(g.buf, n), flat(g.buf, n));
      this.k.binary('mul', flat(g.buf, n), flat(u.buf, n), flat(h.buf, n));
    }
    return this.project('down', f.down, h, T);
  }

  /** out (rows, D) = norm(x) by the backend's norm kernel */
  private norm(n: HostNorm, x: Scratch, out: Scratch, rows: number): void {
    const D = this.config.hidden;
    const p = { rows, n: D, eps: n.eps };
    const rstd = this.buf('rstd', rows);
    if (n.kind === 'rms')
      this.k.rmsNorm(mk(x.buf, [rows, D]), n.weight, mk(out.buf, [rows, D]), flat(rstd.buf, rows), p);
    else {
      const mean = this.buf('mean', rows);
      this.k.layerNorm(
        mk(x.buf, [rows, D]),
        n.weight,
        n.bias,
        mk(out.buf, [rows, D]),
        flat(mean.buf, rows),
        flat(rstd.buf, rows),
        p,
      );
    }
  }

  /** x += y over n elements (the residual stream) */
  private addInto(x: Scratch, y: Step, n: number): void {
    this.k.binary('add', flat(x.buf, n), flat(y.buf, n), flat(x.buf, n));
  }

  /** final norm of the wanted rows and the head: logits [R, V] (a copy the caller owns) */
  private logits(x: Scratch, rows: Int32Array, T: number): Float32Array {
    const c = this.config;
    const D = c.hidden;
    const R = rows.length;
    if (R === 0) return new Float32Array(0);
    const sel = this.buf('sel', R * D);
    rows.forEach((r, i) => {
      if (r < 0 || r >= T) throw new Error(`FastDecoder: logit row ${r} outside the step's ${T} tokens`);
      sel.host.set(x.host.subarray(r * D, (r + 1) * D), i * D);
    });
    const hn = this.buf('hnHead', R * D);
    if (this.finalNorm) this.norm(this.finalNorm, sel, hn, R);
    else hn.host.set(sel.host.subarray(0, R * D));
    if (c.headScale === 'rsqrt-hidden' && c.tieEmbeddings) {
      const s = Math.fround(D ** -0.5);
      for (let i = 0; i < R * D; i++) hn.host[i] = Math.fround(hn.host[i]! * s);
    }
    return this.project('head', this.head, hn, R).host.slice();
  }

  /** out (M, N) = in (M, K) @ W (+ bias): the backend's matmul into a step buffer, returned as its host view */
  private project(name: string, w: Weight, input: Scratch, M: number): Step {
    const out = this.buf(`out:${name}`, M * w.N);
    if (w.bits !== null)
      this.quantMatmul(mk(input.buf, [M, w.K]), w.view, mk(out.buf, [M, w.N]), { M, N: w.N, K: w.K, bits: w.bits });
    else
      this.matmul(mk(input.buf, [M, w.K]), w.view, mk(out.buf, [M, w.N]), {
        batch: 1,
        M,
        N: w.N,
        K: w.K,
        transA: false,
        transB: w.transB,
        strideA: 0,
        strideB: 0,
      });
    const y = out.host.subarray(0, M * w.N);
    if (w.bias) for (let m = 0; m < M; m++) for (let j = 0; j < w.N; j++) y[m * w.N + j] += w.bias[j]!;
    if (w.lora) {
      // the adapter after the base (bias included), as LoraLinear.forward: y + fround(scaling * B (A x))
      const h = this.project(`${name}.lora_A`, w.lora.a, input, M); // (M, r)
      const d = this.project(`${name}.lora_B`, w.lora.b, h, M).host; // (M, N)
      const s = w.lora.scaling;
      for (let i = 0; i < M * w.N; i++) y[i] += Math.fround(d[i]! * s);
    }
    return { buf: out.buf, host: y };
  }

  /** the first n floats of host array `name` (grown by doubling, kept between steps; valid until the next
   * request for the same name, i.e. within one layer) */
  private hostBuf(name: string, n: number): Float32Array {
    let a = this.hostScratch.get(name);
    if (!a || a.length < n) this.hostScratch.set(name, (a = new Float32Array(Math.max(n, 2 * (a?.length ?? 0)))));
    return a.subarray(0, n);
  }

  /** a step buffer of at least n floats (grown by doubling, kept between steps) */
  private buf(name: string, n: number): Scratch {
    let s = this.scratch.get(name);
    if (!s || s.host.length < n) {
      if (s) this.backend.free(s.buf);
      const buf = this.backend.allocate('float32', Math.max(n, 2 * (s?.host.length ?? 0), 1), false);
      s = { buf, host: this.backend.view(buf) as Float32Array };
      this.scratch.set(name, s);
    }
    return s;
  }
}

// ---- host helpers ----

function need(t: Tensor | null, name: string): Tensor {
  if (!t) throw new Error(`no parameter ${name}`);
  return t;
}

/** the module at `path` of the model, or null */
function moduleAt(model: LanguageModel, path: string): unknown {
  try {
    return model.getModule(path);
  } catch {
    return null; // no module at that path: the parameter lookup names what is missing
  }
}

/** the zero-copy host view of a contiguous float32 parameter on `backend` */
function hostOf(backend: Backend, t: Tensor): Float32Array {
  if (t.dtype !== 'float32' || !t.isContiguous) throw new Error(`a ${t.dtype} or strided parameter`);
  const buf = t.storage.buf;
  if (buf.backend !== backend) throw new Error('a parameter on another backend');
  return (backend.view(buf) as Float32Array).subarray(t.offset, t.offset + t.size);
}

const mk = (buf: Buf, shape: [number, number]): View => ({ buf, shape, strides: [shape[1], 1], offset: 0 });
const flat = (buf: Buf, n: number): View => ({ buf, shape: [n], strides: [1], offset: 0 });

/** per token: cos / sin of its rotary angles [T, dim/2] */
function ropeCosSin(spec: RopeSpec, step: FastStep): { cos: Float32Array; sin: Float32Array; half: number } {
  const T = step.ids.length;
  const half = spec.dim / 2;
  const cos = new Float32Array(T * half);
  const sin = new Float32Array(T * half);
  const freqs = new Map<number, ReturnType<typeof ropeInvFreq>>();
  for (let t = 0; t < T; t++) {
    const len = step.seqLen(t);
    let f = freqs.get(len);
    if (!f) freqs.set(len, (f = ropeInvFreq(spec, len)));
    for (let i = 0; i < half; i++) {
      const ang = step.positions[t]! * f.invFreq[i]!;
      cos[t * half + i] = Math.cos(ang) * f.attentionFactor;
      sin[t * half + i] = Math.sin(ang) * f.attentionFactor;
    }
  }
  return { cos, sin, half };
}

/**
 * (T, h*hs) -> (h, T, hs), with rotate_half RoPE applied on the way to the first 2*half dims of every head
 * when `r` is given (rounded as the reference rope op rounds: each product to float32, then the sum). T = 1
 * is the same memory: rotated in place and returned. Otherwise written into the front of `out` (a step
 * buffer, overwritten by the next call) and that part returned. Index loops: no subarray objects per row.
 */
function headsFirst(
  x: Float32Array,
  T: number,
  h: number,
  hs: number,
  r: { cos: Float32Array; sin: Float32Array; half: number } | null,
  out: Float32Array,
): Float32Array {
  const half = r ? r.half : 0;
  const dst = T === 1 ? x : out.subarray(0, T * h * hs);
  for (let t = 0; t < T; t++) {
    const cs = t * half;
    for (let j = 0; j < h; j++) {
      const [src, o] = [(t * h + j) * hs, (j * T + t) * hs];
      for (let i = 0; i < half; i++) {
        const c = r!.cos[cs + i]!;
        const s = r!.sin[cs + i]!;
        const x1 = x[src + i]!;
        const x2 = x[src + half + i]!;
        dst[o + i] = Math.fround(x1 * c) - Math.fround(x2 * s);
        dst[o + half + i] = Math.fround(x2 * c) + Math.fround(x1 * s);
      }
      if (T > 1) for (let d = 2 * half; d < hs; d++) dst[o + d] = x[src + d]!;
    }
  }
  return dst;
}

/** (h, T, hs) -> (T, h*hs) into out */
function tokensFirst(x: Float32Array, T: number, h: number, hs: number, out: Float32Array): void {
  for (let j = 0; j < h; j++)
    for (let t = 0; t < T; t++) {
      const [src, dst] = [(j * T + t) * hs, (t * h + j) * hs];
      for (let d = 0; d < hs; d++) out[dst + d] = x[src + d]!;
    }
}
