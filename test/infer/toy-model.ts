// A small LanguageModel for trainer/precision tests that must not depend on a family's internals: token
// embedding → N residual MLP blocks (pre-LayerNorm) → tied head. It honours the trainer's
// `gradientCheckpointing` flag by wrapping each block in `checkpoint` — the pattern docs/TRAINING.md asks
// every family to follow.
import { checkpoint, gelu, linear, nn, type Tensor } from '../../src/index.js';
import { Rng } from '../../src/tensor/random.js';
import { getPreset } from '../../src/models/presets.js';
import type { LanguageModel, ModelInputs, ModelOutputs } from '../../src/models/model.js';
import type { DecoderConfig } from '../../src/models/config.js';

class Block extends nn.Module {
  readonly ln: nn.LayerNorm;
  readonly up: nn.Linear;
  readonly down: nn.Linear;
  constructor(d: number, rng: Rng) {
    super();
    this.ln = this.child('ln', new nn.LayerNorm(d));
    this.up = this.child('up', new nn.Linear(d, 4 * d, { rng }));
    this.down = this.child('down', new nn.Linear(4 * d, d, { rng }));
  }
  forward(x: Tensor): Tensor {
    return x.add(this.down.forward(gelu(this.up.forward(this.ln.forward(x))))); // (B, T, D)
  }
}

export class ToyLM extends nn.Module implements LanguageModel {
  readonly config: DecoderConfig;
  readonly wte: nn.Embedding;
  readonly blocks: nn.ModuleList<Block>;
  gradientCheckpointing = false;

  constructor(opts: { vocab?: number; dim?: number; layers?: number; seed?: number } = {}) {
    super();
    const rng = new Rng(opts.seed ?? 0);
    const cfg = getPreset('tiny-gpt2') as DecoderConfig;
    this.config = { ...cfg, vocabSize: opts.vocab ?? 256, hidden: opts.dim ?? 32 };
    this.wte = this.child('wte', new nn.Embedding(this.config.vocabSize, this.config.hidden, { rng }));
    this.blocks = this.child(
      'h',
      new nn.ModuleList(Array.from({ length: opts.layers ?? 3 }, () => new Block(this.config.hidden, rng))),
    );
  }

  forward(inputs: ModelInputs): ModelOutputs {
    let x = this.wte.forward(inputs.inputIds); // (B, T, D)
    for (const b of this.blocks.items) {
      x = this.gradientCheckpointing ? checkpoint((h) => b.forward(h), [x], b.parameters()) : b.forward(x);
    }
    return { logits: linear(x, this.wte.weight) }; // (B, T, V)
  }
}
