// Seeded, reproducible random numbers (xoshiro128**, seeded with splitmix32). Same seed, same
// stream, in every runtime.

/** murmur3's 32-bit finaliser: a bijection on uint32 */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  return fmix32(state.s);
}

export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed = 0) {
    const st = { s: seed | 0 };
    this.s = new Uint32Array([splitmix32(st), splitmix32(st), splitmix32(st), splitmix32(st)]);
  }

  /**
   * A generator whose whole 128-bit state is a bijection of four uint32 key words (four rounds of murmur3's
   * finaliser, each word mixed with its neighbour): distinct keys start distinct streams, which a 32-bit seed
   * cannot promise for keys wider than 32 bits.
   */
  static fromKey(key: readonly [number, number, number, number]): Rng {
    const w = key.map((x) => x >>> 0);
    for (let r = 0; r < 4; r++) for (let i = 0; i < 4; i++) w[i] = fmix32((w[i]! ^ w[(i + 3) % 4]!) >>> 0);
    const rng = new Rng(0);
    rng.s.set(w);
    if (rng.s.every((x) => x === 0)) rng.s[0] = 1; // xoshiro's one forbidden state
    return rng;
  }

  /** uniform uint32 */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** uniform in [0, 1) with 32 bits of resolution */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** uniform integer in [0, n) */
  int(n: number): number {
    if (!(n > 0)) throw new Error(`Rng.int: n must be positive, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** standard normal (Box-Muller) */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** in-place Fisher-Yates shuffle */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }

  /** serialisable state, for resumable training */
  getState(): number[] {
    return [...this.s, this.spare === null ? NaN : this.spare];
  }
  setState(st: number[]): void {
    this.s.set(st.slice(0, 4));
    this.spare = Number.isNaN(st[4]) || st[4] === undefined ? null : st[4]!;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let globalRng = new Rng(0);
export function manualSeed(seed: number): void {
  globalRng = new Rng(seed);
}
export function defaultRng(): Rng {
  return globalRng;
}
