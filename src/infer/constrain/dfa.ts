// A lazily built DFA over bytes on top of a ByteNfa with procedures. A DFA state is the set of live
// configurations (NFA node, call stack) reachable after the bytes so far, closed under epsilon, call and
// return moves and reduced to the nodes that consume bytes. States and their transitions are built on
// demand and cached, so the per-token work of mask computation is an array lookup per trie edge.
// Call stacks are hash-consed into ids (a stack is (return node, parent stack)); id 0 is empty.
import { INF, type ByteNfa } from './nfa.js';

/** Unknown transition (not computed yet); DEAD means no live configuration accepts the byte. */
const UNKNOWN = -2;
export const DEAD = -1;
/** Deeper call stacks mean a left-recursive schema (a $ref that can call itself before consuming input). */
export const MAX_DEPTH = 1000;

interface DfaState {
  /** flat (node, stack) pairs, sorted: the kernel of the configuration set */
  configs: Int32Array;
  accept: boolean;
  /** fewest bytes to acceptance from here (an upper bound on the tokens needed) */
  dist: number;
}

export class LazyDfa {
  private states: DfaState[] = [];
  private trans: Int32Array[] = [];
  private byKey = new Map<string, number>();
  // call stacks: (ret node, parent id), depth, and the bytes needed to unwind them
  private stackRet: number[] = [-1];
  private stackParent: number[] = [-1];
  private stackDepth: number[] = [0];
  private stackDist: number[] = [0];
  private stackIds = new Map<string, number>();
  readonly start: number;
  private isEnd: Uint8Array;

  constructor(
    readonly nfa: ByteNfa,
    private where: string,
  ) {
    this.isEnd = new Uint8Array(nfa.size);
    for (const e of nfa.procEnd) this.isEnd[e] = 1;
    const s = this.intern([nfa.procStart[0], 0]);
    if (s === DEAD) throw new Error(`${where}: internal error: the start state is dead`);
    this.start = s;
  }

  get stateCount(): number {
    return this.states.length;
  }

  /** estimated heap bytes of the built states: a 256-entry transition row and the configurations each */
  get approxBytes(): number {
    let b = 0;
    for (const st of this.states) b += 1024 + 64 + st.configs.byteLength;
    return b;
  }
  isAccepting(s: number): boolean {
    return this.states[s].accept;
  }
  distance(s: number): number {
    return this.states[s].dist;
  }

  /** The state after byte b from state s (DEAD if none). */
  step(s: number, b: number): number {
    const t = this.trans[s];
    const v = t[b];
    if (v !== UNKNOWN) return v;
    return (t[b] = this.compute(s, b));
  }

  private compute(s: number, b: number): number {
    const seeds: number[] = [];
    const cfg = this.states[s].configs;
    const { edges, dist } = this.nfa;
    for (let k = 0; k < cfg.length; k += 2) {
      const e = edges[cfg[k]];
      for (let j = 0; j < e.length; j += 3) {
        if (b >= e[j] && b <= e[j + 1] && dist[e[j + 2]] < INF) seeds.push(e[j + 2], cfg[k + 1]);
      }
    }
    return seeds.length ? this.intern(seeds) : DEAD;
  }

  private push(parent: number, ret: number): number {
    const key = `${ret},${parent}`;
    let id = this.stackIds.get(key);
    if (id !== undefined) return id;
    const depth = this.stackDepth[parent] + 1;
    if (depth > MAX_DEPTH) {
      const why = 'without consuming input (a left-recursive $ref?)';
      throw new Error(`${this.where}: nesting deeper than ${MAX_DEPTH} ${why}`);
    }
    id = this.stackRet.length;
    this.stackRet.push(ret);
    this.stackParent.push(parent);
    this.stackDepth.push(depth);
    this.stackDist.push(Math.min(INF, this.nfa.dist[ret] + this.stackDist[parent]));
    this.stackIds.set(key, id);
    return id;
  }

  /** Epsilon/call/return closure of seed (node, stack) pairs, interned as a DFA state. */
  private intern(seeds: number[]): number {
    const { eps, edges, calls, procStart, procEnd, dist } = this.nfa;
    const n = eps.length;
    const seen = new Set<number>();
    const work = seeds.slice();
    const kernel: number[] = [];
    let accept = false;
    let best = INF;
    while (work.length) {
      const stack = work.pop()!,
        node = work.pop()!;
      const key = stack * n + node;
      if (seen.has(key)) continue;
      seen.add(key);
      if (edges[node].length) {
        kernel.push(node, stack);
        best = Math.min(best, dist[node] + this.stackDist[stack]);
      }
      for (const t of eps[node]) if (dist[t] < INF) work.push(t, stack);
      const c = calls[node];
      for (let k = 0; k < c.length; k += 2) {
        if (dist[procStart[c[k]]] < INF && dist[c[k + 1]] < INF) work.push(procStart[c[k]], this.push(stack, c[k + 1]));
      }
      if (this.isEnd[node]) {
        if (stack !== 0) work.push(this.stackRet[stack], this.stackParent[stack]);
        else if (node === procEnd[0]) {
          accept = true;
          best = 0;
        }
      }
    }
    if (!kernel.length && !accept) return DEAD;
    return this.internSet(kernel, accept, best);
  }

  private internSet(kernel: number[], accept: boolean, dist: number): number {
    const pairs: [number, number][] = [];
    for (let k = 0; k < kernel.length; k += 2) pairs.push([kernel[k], kernel[k + 1]]);
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const key = (accept ? 'A' : 'N') + pairs.join(';');
    const hit = this.byKey.get(key);
    if (hit !== undefined) return hit;
    const id = this.states.length;
    this.states.push({ configs: Int32Array.from(pairs.flat()), accept, dist });
    this.trans.push(new Int32Array(256).fill(UNKNOWN));
    this.byKey.set(key, id);
    return id;
  }
}
