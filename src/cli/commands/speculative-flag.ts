// `--speculative mtp` (generate, serve, bench decode): speculative decoding with the model's own
// multi-token-prediction depths (DeepSeek-V3) as the drafter. `--draft-model DIR` and `--prompt-lookup`
// stay the flags of the other two drafters.
import type { ModelConfig } from '../../models/config.js';

/** true for `--speculative mtp`, false when absent; a clear error for anything else */
export function parseSpeculative(value: string | undefined): boolean {
  if (value === undefined) return false;
  if (value === 'mtp') return true;
  throw new Error(
    `--speculative: expected "mtp" (the model's own multi-token-prediction depths), got ${JSON.stringify(value)}; ` +
      'a separate draft model is --draft-model DIR, n-gram drafts are --prompt-lookup',
  );
}

/** refuses `--speculative mtp` for a model without MTP depths, naming the model directory */
export function checkMtpModel(config: ModelConfig, dir: string): void {
  const depth = config.arch === 'decoder' ? (config.mtp?.depth ?? 0) : 0;
  if (depth < 1)
    throw new Error(
      `--speculative mtp: ${dir} (${config.family}) has no multi-token-prediction depths ` +
        '(config.json num_nextn_predict_layers; DeepSeek-V3 models have them)',
    );
}
