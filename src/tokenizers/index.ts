// Public API of the tokenizers package. Browser-safe: the Node file helpers (loadTokenizer, saveTokenizer)
// live in load-node.ts and are imported from there by the CLI and tests.
//
//   const tok = Tokenizer.fromJSON(tokenizerJson, tokenizerConfigJson);   // any HF tokenizer.json
//   const ids = tok.encode('Hello world');            // post-processor adds [CLS]/<s>/... by default
//   tok.decode(ids, { skipSpecialTokens: true });
//   tok.applyChatTemplate(messages, { addGenerationPrompt: true });
//   charTokenizer(corpus) / bytesTokenizer() / trainBPE(text, { vocabSize, onProgress }) /
//   trainWordPiece(...) / trainUnigram(...)          // -> Tokenizer; tok.toJSON() is the tokenizer.json
export { Tokenizer, SPECIAL_ROLES } from './tokenizer.js';
export type {
  SpecialRole,
  SpecialToken,
  SpecialTokens,
  EncodeOptions,
  DecodeOptions,
  ChatMessage,
  ChatTemplateOptions,
  TokenizerParts,
} from './tokenizer.js';
export { charTokenizer, bytesTokenizer } from './simple.js';
export type { CharTokenizerOptions } from './simple.js';
export { vocabularyDifference } from './compare.js';
export { trainBPE, trainWordPiece, mergeLoop, countWords } from './train-bpe.js';
export type { ProgressFn, TrainOptionsBase, TrainBPEOptions, TrainWordPieceOptions } from './train-bpe.js';
export { trainUnigram, digamma } from './train-unigram.js';
export type { TrainUnigramOptions } from './train-unigram.js';
export { BPE, WordPiece, WordLevel, Unigram, PieceTrie, modelFromJSON } from './models.js';
export type { Model, BPEOptions } from './models.js';
export { BertNormalizer, normalizerFromJSON } from './normalizers.js';
export type { Normalizer } from './normalizers.js';
export {
  ByteLevelPre,
  BertPre,
  Metaspace,
  Split,
  GPT2_PATTERN,
  splitWith,
  preTokenizerFromJSON,
} from './pre-tokenizers.js';
export type { PreTokenizer, SplitBehavior, PrependScheme } from './pre-tokenizers.js';
export { TemplateProcessing, postProcessorFromJSON, decoderFromJSON, cleanUpTokenization } from './processors.js';
export type { PostProcessor, Decoder } from './processors.js';
export { AddedTokenMatcher, addedTokenFromJSON } from './added-tokens.js';
export type { AddedToken } from './added-tokens.js';
export { byteToChar, charToByte, toByteLevel, byteToken, parseByteToken } from './unicode.js';
