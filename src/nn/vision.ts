// ViT-style patch embedding (Dosovitskiy et al. 2021), in transformers' ViTEmbeddings layout:
//   patch_embeddings.projection.weight [D, C, P, P] + .bias [D]  (a stride-P conv, done as a matmul)
//   position_embeddings [1, N (+1 with a class token), D],  cls_token [1, 1, D] (optional)
// An image becomes N = (H/P)(W/P) tokens of width D; `prependImageTokens` puts them in front of the
// text token embeddings, so a decoder sees one sequence [image | text] (a tiny vision-language model).
//
// Notation: B batch, C channels, H/W image size, P patch size, N patches, D width, T text tokens.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { add, concat, expand, linear, permute, reshape } from '../ops/index.js';
import { Module, initNormal, initZeros } from './module.js';

export interface PatchEmbeddingOptions {
  imageSize: number;
  patchSize: number;
  channels: number;
  hidden: number;
  /** prepend a learned [CLS] token (ViT classification); default false */
  clsToken?: boolean;
  std?: number;
  rng?: Rng;
}

/** [B, C, H, W] -> [B, N, C*P*P], patches in row-major order, each flattened as (c, u, v) */
export function patchify(images: Tensor, patch: number): Tensor {
  const [B, C, H, W] = images.shape as [number, number, number, number];
  if (images.ndim !== 4 || H % patch !== 0 || W % patch !== 0) {
    throw new Error(
      `patchify: images must be [B, C, H, W] with H and W divisible by the patch size ${patch}, got [${images.shape.join(', ')}]`,
    );
  }
  const [h, w] = [H / patch, W / patch];
  const x = reshape(images, [B, C, h, patch, w, patch]); // (B, C, h, P, w, P)
  return reshape(permute(x, [0, 2, 4, 1, 3, 5]), [B, h * w, C * patch * patch]); // (B, N, C*P*P)
}

/** the stride-P conv of ViT: weight [D, C, P, P] applied to non-overlapping patches */
class PatchProjection extends Module {
  constructor(
    readonly channels: number,
    readonly patch: number,
    readonly hidden: number,
    std: number,
    rng: Rng,
  ) {
    super();
    this.param('weight', initNormal([hidden, channels, patch, patch], std, rng));
    this.param('bias', initZeros([hidden]));
  }
  /** [B, C, H, W] -> [B, N, D] */
  forward(images: Tensor): Tensor {
    const w = reshape(this.p('weight'), [this.hidden, this.channels * this.patch * this.patch]); // (D, C*P*P)
    return linear(patchify(images, this.patch), w, this.p('bias'));
  }
}

class PatchEmbeddings extends Module {
  readonly projection: PatchProjection;
  constructor(o: PatchEmbeddingOptions, rng: Rng) {
    super();
    this.projection = this.child(
      'projection',
      new PatchProjection(o.channels, o.patchSize, o.hidden, o.std ?? 0.02, rng),
    );
  }
}

export class PatchEmbedding extends Module {
  readonly patch_embeddings: PatchEmbeddings;
  /** tokens per image (patches, plus one with a class token) */
  readonly tokens: number;

  constructor(readonly o: PatchEmbeddingOptions) {
    super();
    if (o.imageSize % o.patchSize !== 0)
      throw new Error(`PatchEmbedding: patchSize ${o.patchSize} must divide imageSize ${o.imageSize}`);
    const rng = o.rng ?? new Rng(0);
    const std = o.std ?? 0.02;
    this.tokens = (o.imageSize / o.patchSize) ** 2 + (o.clsToken ? 1 : 0);
    if (o.clsToken) this.param('cls_token', initNormal([1, 1, o.hidden], std, rng));
    else this.noParam('cls_token');
    this.patch_embeddings = this.child('patch_embeddings', new PatchEmbeddings(o, rng));
    this.param('position_embeddings', initNormal([1, this.tokens, o.hidden], std, rng));
  }

  /** images [B, C, H, W] (H = W = imageSize) -> image tokens [B, N(+1), D] */
  forward(images: Tensor): Tensor {
    const [B, C, H, W] = images.shape as [number, number, number, number];
    if (C !== this.o.channels || H !== this.o.imageSize || W !== this.o.imageSize) {
      throw new Error(
        `PatchEmbedding: expected images [B, ${this.o.channels}, ${this.o.imageSize}, ${this.o.imageSize}], got [${images.shape.join(', ')}]`,
      );
    }
    let x = this.patch_embeddings.projection.forward(images); // (B, N, D)
    const cls = this.pOpt('cls_token');
    if (cls) x = concat([expand(cls, [B, 1, this.o.hidden]), x], 1); // (B, 1+N, D)
    return add(x, this.p('position_embeddings'));
  }
}

/** one sequence per example: image tokens [B, N, D] first, then text embeddings [B, T, D] -> [B, N+T, D] */
export function prependImageTokens(imageTokens: Tensor, textEmbeds: Tensor): Tensor {
  if (imageTokens.shape[0] !== textEmbeds.shape[0] || imageTokens.shape[2] !== textEmbeds.shape[2]) {
    throw new Error(
      `prependImageTokens: image tokens [${imageTokens.shape.join(', ')}] and text embeddings [${textEmbeds.shape.join(', ')}] differ in batch or width`,
    );
  }
  return concat([imageTokens, textEmbeds], 1);
}
