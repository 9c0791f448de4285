// Training-step CPU time with and without the fused elementwise ops (src/ops/fused.ts), on small GPT-2
// (bias + GELU MLP) and Llama (SwiGLU) models, alternating the two modes round by round in one process:
//   node dist/bench/fusion-step.js [--threads 1] [--steps 4] [--rounds 3] [--backend native|wasm|reference]
// Prints per mode the best per-round median of CPU ms per step (forward, loss, backward, AdamW) and the
// ratio unfused / fused (> 1: fusion saves time). CPU time, not wall time: the machine may be shared.
import '../src/autograd/index.js';
import { createModel } from '../src/models/registry.js';
import { fromHFConfig } from '../src/models/hf-config.js';
import { getPresetInfo } from '../src/models/presets.js';
import { crossEntropy, reshape, setFusion, tensor } from '../src/ops/index.js';
import { setBackend, tidy } from '../src/tensor/engine.js';
import { AdamW } from '../src/train/optim.js';
import type { Backend } from '../src/backend/backend.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** a preset resized: hidden width, layers and FFN width in the preset's own field names */
const MODELS: Record<string, { preset: string; set: Record<string, unknown> }> = {
  'gpt2 (bias+gelu MLP) 256x4': { preset: 'tiny-gpt2', set: { n_embd: 256, n_layer: 4, n_head: 4, n_positions: 256 } },
  'llama (SwiGLU) 256x4': {
    preset: 'tiny-llama',
    set: {
      hidden_size: 256,
      intermediate_size: 688,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      num_key_value_heads: 4,
    },
  },
};

async function makeBackend(kind: string, threads: number): Promise<Backend> {
  if (kind === 'native') {
    const { loadNativeAddon } = await import('../src/backend/native/addon-node.js');
    const { addon, error } = loadNativeAddon();
    if (!addon) throw new Error(`fusion-step: native backend unavailable: ${error}`);
    const { createNativeBackend } = await import('../src/backend/native/backend.js');
    return createNativeBackend(addon, { threads });
  }
  if (kind === 'wasm') return (await import('../src/backend/wasm/backend.js')).createWasmBackend({ threads });
  return new (await import('../src/backend/reference/backend.js')).ReferenceBackend();
}

/** CPU ms of each of `steps` training steps */
function timeSteps(step: () => void, steps: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const c0 = process.cpuUsage();
    step();
    const c = process.cpuUsage(c0);
    out.push((c.user + c.system) / 1000);
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function main(): Promise<void> {
  const threads = Number(arg('threads', '1'));
  const steps = Number(arg('steps', '4'));
  const rounds = Number(arg('rounds', '3'));
  const B = 8;
  const T = 128;
  const be = await makeBackend(arg('backend', 'native'), threads);
  setBackend(be);
  console.log(
    `training step CPU time, backend ${be.name}, threads ${threads}, batch ${B}x${T}, best of ${rounds} round medians`,
  );
  for (const [name, m] of Object.entries(MODELS)) {
    const info = getPresetInfo(m.preset);
    const model = createModel(fromHFConfig({ ...info.hf, ...m.set }));
    const opt = new AdamW(model.namedParameters(), { lr: 1e-4 });
    const V = model.config.vocabSize;
    const ids = tensor(
      Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % V),
      { shape: [B, T] },
    );
    const targets = tensor(
      Int32Array.from({ length: B * T }, (_, i) => (i * 104729 + 3) % V),
      { shape: [B * T] },
    );
    const step = () => {
      tidy(() => {
        const { logits } = model.forward({ inputIds: ids });
        crossEntropy(reshape(logits, [B * T, V]), targets).backward();
      });
      opt.step();
      opt.zeroGrad();
    };
    const best: Record<'fused' | 'unfused', number> = { fused: Infinity, unfused: Infinity };
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['fused', 'unfused'] as const) {
        setFusion(mode === 'fused');
        step(); // warm-up (allocations, program encodings)
        best[mode] = Math.min(best[mode], median(timeSteps(step, steps)));
      }
    }
    setFusion(true);
    console.log(
      `  ${name.padEnd(30)} fused ${best.fused.toFixed(1)} ms/step  unfused ${best.unfused.toFixed(1)} ms/step  ` +
        `unfused / fused ${(best.unfused / best.fused).toFixed(3)}`,
    );
  }
}

await main();
