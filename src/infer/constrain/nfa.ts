// A byte-level NFA with procedures (a recursive transition network): the compiled form of a regex or a
// JSON Schema. Edges consume one byte from a range, or nothing (epsilon); a call edge enters another
// procedure and resumes at its return node when that procedure reaches its end (recursive $ref, any
// JSON value). Procedure 0 is the whole constraint: its end with an empty call stack accepts.
//
// Edges are added over code points and immediately restricted to the alphabet the vocabulary can
// produce (see vocab.ts), so the automaton never contains a path the model could not spell. Missing
// literal characters are recorded for the "this vocabulary cannot produce ..." error.
import { intersect, isEmpty, sample, size, utf8Sequences, type Ranges } from './charset.js';
import type { RegexNode } from './regex.js';

/** Guard against schemas whose unrolled automaton would exhaust memory (huge maxLength, maxItems, ...). */
export const MAX_NODES = 2_000_000;
export const INF = 0x3fffffff;

export class ByteNfa {
  /** per node: epsilon successors */
  readonly eps: number[][] = [];
  /** per node: flat (lo, hi, to) byte-range edges */
  readonly edges: number[][] = [];
  /** per node: flat (proc, ret) call edges */
  readonly calls: number[][] = [];
  readonly procStart: number[] = [];
  readonly procEnd: number[] = [];
  /** characters a literal needed that the alphabet lacks (for the up-front error) */
  readonly missing = new Set<number>();
  /** per node: fewest bytes to its procedure's end (INF = dead), filled by analyze() */
  dist = new Int32Array(0);

  constructor(
    readonly alphabet: Ranges,
    private where: string,
    /** node budget: building stops with an error beyond it (compile time and memory grow with it) */
    private readonly maxNodes = MAX_NODES,
  ) {}

  node(): number {
    if (this.eps.length >= this.maxNodes) {
      const hint = 'lower maxLength / maxItems / repetition counts';
      throw new Error(`${this.where}: the automaton exceeds ${this.maxNodes} states (${hint})`);
    }
    this.eps.push([]);
    this.edges.push([]);
    this.calls.push([]);
    return this.eps.length - 1;
  }

  /** A new procedure; returns its id. Its body is emitted later from procStart[id] to procEnd[id]. */
  proc(): number {
    this.procStart.push(this.node());
    this.procEnd.push(this.node());
    return this.procStart.length - 1;
  }

  epsilon(a: number, b: number): void {
    this.eps[a].push(b);
  }
  call(a: number, proc: number): number {
    const ret = this.node();
    this.calls[a].push(proc, ret);
    return ret;
  }

  /** from --(one code point of `set`, as UTF-8)--> a new node, which is returned. */
  chars(from: number, set: Ranges): number {
    const to = this.node();
    const ok = intersect(set, this.alphabet);
    if (isEmpty(ok)) {
      if (size(set) <= 8) for (const c of sample(set, 8)) this.missing.add(c);
      return to; // no edge: `to` stays unreachable and analyze() finds the branch dead
    }
    for (let i = 0; i < ok.length; i += 2) {
      for (const byteSeq of utf8Sequences(ok[i], ok[i + 1])) this.byteChain(from, to, byteSeq);
    }
    return to;
  }

  private byteChain(from: number, to: number, seq: [number, number][]): void {
    let cur = from;
    for (let k = 0; k < seq.length; k++) {
      const next = k === seq.length - 1 ? to : this.node();
      this.edges[cur].push(seq[k][0], seq[k][1], next);
      cur = next;
    }
  }

  literal(from: number, s: string): number {
    let cur = from;
    for (const c of s) {
      const cp = c.codePointAt(0)!;
      cur = this.chars(cur, [cp, cp]);
    }
    return cur;
  }

  /** Emits alternatives, each `branch(start) -> end`, joined at one end node. */
  alt(from: number, branches: ((start: number) => number)[]): number {
    const end = this.node();
    for (const b of branches) {
      const s = this.node();
      this.epsilon(from, s);
      this.epsilon(b(s), end);
    }
    return end;
  }

  /** `body` repeated min..max times (max may be Infinity). */
  repeat(from: number, body: (start: number) => number, min: number, max: number): number {
    let cur = from;
    for (let i = 0; i < min; i++) cur = body(cur);
    if (max === Infinity) {
      const loop = this.node();
      this.epsilon(cur, loop);
      this.epsilon(body(loop), loop);
      return loop;
    }
    const end = this.node();
    for (let i = min; i < max; i++) {
      this.epsilon(cur, end);
      cur = body(cur);
    }
    this.epsilon(cur, end);
    return end;
  }

  /** Emits a parsed regex; `setMap` rewrites each set (e.g. into JSON-escaped forms). */
  regex(from: number, n: RegexNode, setMap?: (from: number, set: Ranges) => number): number {
    switch (n.k) {
      case 'set':
        return setMap ? setMap(from, n.set) : this.chars(from, n.set);
      case 'seq':
        return n.items.reduce((cur, item) => this.regex(cur, item, setMap), from);
      case 'alt':
        return this.alt(
          from,
          n.alts.map((a) => (s: number) => this.regex(s, a, setMap)),
        );
      case 'rep':
        return this.repeat(from, (s) => this.regex(s, n.node, setMap), n.min, n.max);
    }
  }

  /**
   * Fewest bytes from every node to its procedure's end, with calls costing their callee's minimum.
   * INF marks dead nodes (no way to finish with the alphabet). A worklist over reverse edges: when a
   * node improves, its predecessors (and, for a procedure start, every call site) are revisited.
   */
  analyze(): void {
    const n = this.eps.length;
    const dist = new Int32Array(n).fill(INF);
    const preds: number[][] = Array.from({ length: n }, () => []);
    const callSites: number[][] = this.procStart.map(() => []);
    for (let a = 0; a < n; a++) {
      for (const b of this.eps[a]) preds[b].push(a);
      for (let k = 0; k < this.edges[a].length; k += 3) preds[this.edges[a][k + 2]].push(a);
      for (let k = 0; k < this.calls[a].length; k += 2) {
        callSites[this.calls[a][k]].push(a);
        preds[this.calls[a][k + 1]].push(a);
      }
    }
    const work: number[] = [];
    for (const e of this.procEnd) {
      dist[e] = 0;
      work.push(...preds[e]);
    }
    const startOf = new Map(this.procStart.map((s, p) => [s, p]));
    while (work.length) {
      const a = work.pop()!;
      const d = this.relax(a, dist);
      if (d >= dist[a]) continue;
      dist[a] = d;
      for (const p of preds[a]) work.push(p);
      const p = startOf.get(a);
      if (p !== undefined) for (const c of callSites[p]) work.push(c);
    }
    this.dist = dist;
  }

  private relax(a: number, dist: Int32Array): number {
    let best = dist[a];
    for (const b of this.eps[a]) best = Math.min(best, dist[b]);
    const e = this.edges[a];
    for (let k = 0; k < e.length; k += 3) best = Math.min(best, dist[e[k + 2]] + 1);
    const c = this.calls[a];
    for (let k = 0; k < c.length; k += 2) best = Math.min(best, dist[this.procStart[c[k]]] + dist[c[k + 1]]);
    return Math.min(best, INF);
  }

  get size(): number {
    return this.eps.length;
  }
}
