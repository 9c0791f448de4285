// What the CLI says about a model that cannot do what a command asks of it.
import { type ModelConfig, encoderHeadKind } from '../models/config.js';

/** A headless encoder (transformers' BertModel) outputs hidden states, not logits: null for any other model. */
export function headlessNote(config: ModelConfig): string | null {
  if (config.arch !== 'encoder' || encoderHeadKind(config.head) !== 'model') return null;
  return (
    `this ${config.family} model has no head (architectures ["BertModel"]): it outputs last_hidden_state, not logits. ` +
    "A model with a masked-LM head gives logits over the vocabulary: 'lineage init --preset tiny-bert', " +
    `or --set 'architectures=["BertForMaskedLM"]'`
  );
}

/** commands that need logits (a loss) refuse a headless model with the note above */
export function requireHead(config: ModelConfig, what: string): void {
  const note = headlessNote(config);
  if (note) throw new Error(`${what} needs a model with a head; ${note}`);
}
