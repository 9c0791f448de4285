// A regular-expression parser for constrained decoding: JavaScript syntax (the `u`-flag subset that is
// regular) to a small AST over code-point sets. Supported: literals and escapes (\d \w \s \D \W \S \n \t
// \r \f \v \0 \xHH \uHHHH \u{H..} and escaped metacharacters), `.`, classes [...] with ranges and
// negation, groups ( ) (?: ) (?<name> ), alternation, quantifiers * + ? {n} {n,} {n,m} (lazy forms mean
// the same language), and ^ / $ at the start / end of a top-level branch. Backreferences, lookaround,
// word boundaries and \p{..} are not regular or not supported here: they are a clear error.
import { ALL, complement, normalize, ofChars, ofRange, type Ranges } from './charset.js';

export type RegexNode =
  | { k: 'set'; set: Ranges }
  | { k: 'seq'; items: RegexNode[] }
  | { k: 'alt'; alts: RegexNode[] }
  | { k: 'rep'; node: RegexNode; min: number; max: number };

/** Counted repetitions are unrolled: beyond this the automaton would be huge. */
export const MAX_REPEAT = 10_000;

const DIGIT = ofRange(48, 57);
const WORD = normalize([48, 57, 65, 90, 95, 95, 97, 122]);
const SPACE = normalize([
  9, 13, 32, 32, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000,
  0x3000, 0xfeff, 0xfeff,
]);
const DOT = complement(ofChars('\n\r\u2028\u2029'));

export const seq = (items: RegexNode[]): RegexNode => (items.length === 1 ? items[0] : { k: 'seq', items });
export const set = (s: Ranges): RegexNode => ({ k: 'set', set: s });
export const lit = (s: string): RegexNode => seq(Array.from(s, (c) => set(ofChars(c))));

/** Marker nodes for ^ and $ while parsing; removed by `parseRegex`. */
type Anchor = { k: 'anchor'; end: boolean };
type PNode = RegexNode | Anchor;

class Parser {
  private cps: number[];
  private i = 0;
  constructor(
    private src: string,
    private where: string,
  ) {
    this.cps = Array.from(src, (c) => c.codePointAt(0)!);
  }

  fail(msg: string): never {
    throw new Error(`${this.where}: ${msg} at offset ${this.i} of /${this.src}/`);
  }
  peek(): number {
    return this.i < this.cps.length ? this.cps[this.i] : -1;
  }
  eat(c: string): boolean {
    if (this.peek() !== c.codePointAt(0)) return false;
    this.i++;
    return true;
  }
  done(): boolean {
    return this.i >= this.cps.length;
  }

  alternation(): PNode[][] {
    const branches: PNode[][] = [this.sequence()];
    while (this.eat('|')) branches.push(this.sequence());
    return branches;
  }

  sequence(): PNode[] {
    const items: PNode[] = [];
    while (!this.done() && this.peek() !== 0x7c /* | */ && this.peek() !== 0x29 /* ) */) {
      const atom = this.atom();
      items.push(atom.k === 'anchor' ? atom : this.quantified(atom));
    }
    return items;
  }

  atom(): PNode {
    const c = String.fromCodePoint(this.cps[this.i++]);
    switch (c) {
      case '^':
        return { k: 'anchor', end: false };
      case '$':
        return { k: 'anchor', end: true };
      case '.':
        return set(DOT);
      case '[':
        return set(this.charClass());
      case '(':
        return this.group();
      case '\\':
        return set(this.escape(false));
      case '*':
      case '+':
      case '?':
        return this.fail(`nothing to repeat before '${c}'`);
      default:
        return set(ofChars(c));
    }
  }

  group(): RegexNode {
    if (this.eat('?')) {
      const named = () => this.eat('<') && this.peek() !== 0x3d /* = */ && this.peek() !== 0x21; /* ! */
      if (this.eat(':')) {
        /* non-capturing */
      } else if (named()) {
        while (!this.done() && !this.eat('>')) this.i++; // named group: the name does not change the language
      } else this.fail('lookaround assertions are not supported (not regular)');
    }
    const node = this.toNode(this.alternation());
    if (!this.eat(')')) this.fail("missing ')'");
    return node;
  }

  toNode(branches: PNode[][]): RegexNode {
    const alts = branches.map((b) => {
      if (b.some((n) => n.k === 'anchor')) this.fail('^ and $ are supported only at the start and end of the pattern');
      return seq(b as RegexNode[]);
    });
    return alts.length === 1 ? alts[0] : { k: 'alt', alts };
  }

  quantified(atom: RegexNode): RegexNode {
    let min: number, max: number;
    const save = this.i;
    if (this.eat('*')) [min, max] = [0, Infinity];
    else if (this.eat('+')) [min, max] = [1, Infinity];
    else if (this.eat('?')) [min, max] = [0, 1];
    else if (this.eat('{')) {
      const m = /^(\d+)(,(\d*))?\}/.exec(String.fromCodePoint(...this.cps.slice(this.i, this.i + 24)));
      if (!m) {
        this.i = save;
        return atom;
      } // a literal '{', as JavaScript reads it
      this.i += m[0].length;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (max < min) this.fail(`quantifier {${min},${max}} has max < min`);
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(`repetition count above ${MAX_REPEAT}`);
    } else return atom;
    this.eat('?'); // lazy: same language
    if ('*+?{'.includes(String.fromCodePoint(this.peek() < 0 ? 32 : this.peek()))) this.fail('nested quantifier');
    return this.quantified({ k: 'rep', node: atom, min, max });
  }

  hex(n: number): number {
    const s = String.fromCodePoint(...this.cps.slice(this.i, this.i + n));
    if (s.length !== n || !/^[0-9a-fA-F]+$/.test(s)) this.fail(`expected ${n} hex digits`);
    this.i += n;
    return parseInt(s, 16);
  }

  /** The set one escape stands for (after the backslash). */
  escape(inClass: boolean): Ranges {
    if (this.done()) this.fail('trailing backslash');
    const c = String.fromCodePoint(this.cps[this.i++]);
    const simple: Record<string, Ranges> = {
      d: DIGIT,
      D: complement(DIGIT),
      w: WORD,
      W: complement(WORD),
      s: SPACE,
      S: complement(SPACE),
      n: ofChars('\n'),
      t: ofChars('\t'),
      r: ofChars('\r'),
      f: ofChars('\f'),
      v: ofChars('\v'),
    };
    if (simple[c]) return simple[c];
    if (c === '0' && !/[0-9]/.test(String.fromCodePoint(Math.max(this.peek(), 0)))) return ofChars('\0');
    if (c === 'x') {
      const v = this.hex(2);
      return ofRange(v, v);
    }
    if (c === 'u') {
      if (this.eat('{')) {
        const start = this.i;
        while (!this.done() && this.peek() !== 0x7d) this.i++;
        const cp = parseInt(String.fromCodePoint(...this.cps.slice(start, this.i)), 16);
        if (!this.eat('}') || !(cp >= 0 && cp <= 0x10ffff)) this.fail('bad \\u{...} escape');
        return ofRange(cp, cp);
      }
      const cp = this.hex(4);
      return ofRange(cp, cp);
    }
    if (c === 'b' && inClass) return ofChars('\b');
    if (/[1-9]/.test(c)) this.fail('backreferences are not supported (not regular)');
    if (c === 'b' || c === 'B') this.fail('word boundaries \\b \\B are not supported');
    if (c === 'p' || c === 'P') this.fail('Unicode property escapes \\p{..} are not supported');
    if (c === 'c' || c === 'k') this.fail(`escape \\${c} is not supported`);
    if (/[A-Za-z0-9]/.test(c)) this.fail(`unknown escape \\${c}`);
    return ofChars(c); // an escaped metacharacter or punctuation
  }

  charClass(): Ranges {
    const negate = this.eat('^');
    const pairs: number[] = [];
    while (!this.done() && this.peek() !== 0x5d /* ] */) {
      const lo = this.classAtom();
      if (this.peek() === 0x2d /* - */ && this.cps[this.i + 1] !== 0x5d && this.i + 1 < this.cps.length && lo.single) {
        this.i++;
        const hi = this.classAtom();
        if (!hi.single) this.fail('a class range ends in a class escape');
        if (hi.cp < lo.cp) this.fail('class range out of order');
        pairs.push(lo.cp, hi.cp);
      } else pairs.push(...lo.set);
    }
    if (!this.eat(']')) this.fail("missing ']'");
    const s = normalize(pairs);
    return negate ? complement(s) : s;
  }

  classAtom(): { single: boolean; cp: number; set: Ranges } {
    const cp = this.cps[this.i++];
    if (cp !== 0x5c) return { single: true, cp, set: [cp, cp] };
    const s = this.escape(true);
    const single = s.length === 2 && s[0] === s[1];
    return { single, cp: s[0], set: s };
  }
}

export type RegexMode = 'full' | 'search';

/**
 * Parses `src`. mode 'full': the whole output must match (^ and $ at the ends are allowed and redundant).
 * mode 'search' (JSON Schema `pattern`): a match anywhere, so unanchored branch ends get `[\s\S]*`.
 */
export function parseRegex(src: string, mode: RegexMode, where = 'regex'): RegexNode {
  const p = new Parser(src, where);
  const branches = p.alternation();
  if (!p.done()) p.fail("unbalanced ')'");
  const any: RegexNode = { k: 'rep', node: set(ALL), min: 0, max: Infinity };
  const alts = branches.map((b) => {
    const items = [...b];
    const head = items[0]?.k === 'anchor' && !(items[0] as Anchor).end ? (items.shift(), true) : false;
    const last = items[items.length - 1];
    const tail = last?.k === 'anchor' && last.end ? (items.pop(), true) : false;
    if (items.some((n) => n.k === 'anchor')) p.fail('^ and $ are supported only at the start and end of a branch');
    const body = items as RegexNode[];
    if (mode === 'full') return seq(body);
    return seq([...(head ? [] : [any]), ...body, ...(tail ? [] : [any])]);
  });
  return alts.length === 1 ? alts[0] : { k: 'alt', alts };
}
