// Verifiable rewards for GRPO / PPO as plug-in functions of (completion text, example): each returns a
// number, the total reward is their sum. Answers are read from the completion's first line (a model
// that keeps talking after the answer line is not penalised by exact-match; `format` checks the shape).
import type { AlignRecord, PromptRecord } from './data.js';

export type RewardFn = (completion: string, example: PromptRecord) => number;

/** the completion's first line, trimmed */
export const firstLine = (s: string): string => s.split('\n')[0]!.trim();

export const REWARDS: Record<string, RewardFn> = {
  /** 1 when the first line equals the example's answer */
  'exact-match': (c, ex) => {
    if (ex.answer === undefined) throw new Error(`line ${ex.line}: the exact-match reward needs an 'answer' field`);
    return firstLine(c) === ex.answer.trim() ? 1 : 0;
  },
  /** 0.5 when the completion is one non-empty line ended by a newline (the answer format), nothing more */
  format: (c) => (/^[^\n]*\S[^\n]*\n$/.test(c) ? 0.5 : 0),
};

export function parseRewards(spec: string): { names: string[]; fn: RewardFn } {
  const names = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names)
    if (!REWARDS[n]) throw new Error(`--reward: unknown reward '${n}' (known: ${Object.keys(REWARDS).join(', ')})`);
  if (names.length === 0) throw new Error('--reward: give at least one reward function');
  const fns = names.map((n) => REWARDS[n]!);
  return { names, fn: (c, ex) => fns.reduce((s, f) => s + f(c, ex), 0) };
}

/** rewards that read a field of the example: checked over the whole file before any rollout, by file:line */
export function checkRewardData(names: readonly string[], records: readonly AlignRecord[], file: string): void {
  if (!names.includes('exact-match')) return;
  const r = records.find((x) => x.kind === 'prompt' && x.answer === undefined);
  if (r)
    throw new Error(
      `${file}:${r.line}: the exact-match reward needs an 'answer' field (add one, or pass --reward format)`,
    );
}
