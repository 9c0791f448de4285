// JSON Schema -> ByteNfa. The subset OpenAI's structured outputs accept, plus a few bounds:
//   type (string | number | integer | boolean | null | object | array, or a list of them), enum, const,
//   anyOf, allOf with one member, $ref to #, #/$defs/.., #/definitions/.. (any JSON pointer; recursion
//   allowed), object: properties, required, additionalProperties (false | true | schema),
//   string: minLength, maxLength, pattern, format (date-time, date, time, uuid, email, ipv4),
//   number / integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum (integer-valued bounds for
//   number), array: items, minItems, maxItems.
// Anything else that constrains values (oneOf, not, multipleOf, uniqueItems, patternProperties, ...) is a
// clear error naming the keyword and the schema path, never silently ignored.
//
// Output shape: properties appear in schema order (optional ones may be left out); whitespace is
// limited to one optional ' ' or a newline plus up to 20 indent characters between tokens (as in
// llama.cpp's JSON grammars), so a model cannot pad forever; strings use raw UTF-8 plus the JSON
// escapes (\uXXXX never a surrogate, so each escape is one code point and lengths count exactly).
import { ALL, intersect, isEmpty, normalize, ofChars, ofRange, subtract, type Ranges } from './charset.js';
import { ByteNfa } from './nfa.js';
import { parseRegex, type RegexNode } from './regex.js';
import { integerRangeRegex, numberRangeRegex, type Bound } from './numeric.js';

export type Whitespace = 'flexible' | 'compact';
type Schema = boolean | Record<string, unknown>;

const ANNOTATIONS = new Set([
  'title',
  'description',
  'default',
  'examples',
  '$comment',
  '$schema',
  '$id',
  'deprecated',
  'readOnly',
  'writeOnly',
  '$defs',
  'definitions',
]);
const KEYWORDS: Record<string, string[]> = {
  string: ['minLength', 'maxLength', 'pattern', 'format'],
  number: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'],
  integer: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'],
  object: ['properties', 'required', 'additionalProperties'],
  array: ['items', 'minItems', 'maxItems'],
  boolean: [],
  null: [],
};
const TYPES = Object.keys(KEYWORDS);
const COMBINERS = ['type', 'enum', 'const', 'anyOf', 'allOf', '$ref'];

const FORMATS: Record<string, string> = {
  date:
    '\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|' +
    '02-(?:0[1-9]|1\\d|2[0-8]))',
  time: '(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)',
  uuid: '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
  ipv4: '(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)',
  email:
    "[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" +
    '(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.)+' +
    '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?',
};
FORMATS['date-time'] = `${FORMATS.date}T${FORMATS.time}`;

const HEX = normalize([48, 57, 65, 70, 97, 102]);
/** characters a JSON string may hold unescaped */
const PLAIN = subtract(ALL, normalize([0, 0x1f, 0x22, 0x22, 0x5c, 0x5c]));
const SHORT_ESCAPES: Record<number, string> = { 0x22: '"', 0x5c: '\\', 8: 'b', 12: 'f', 10: 'n', 13: 'r', 9: 't' };
const INT = '-?(?:0|[1-9]\\d*)';
const NUMBER = `${INT}(?:\\.\\d+)?(?:[eE][+-]?\\d{1,2})?`;

export class JsonSchemaCompiler {
  private refProcs = new Map<string, number>();
  private pending: { proc: number; schema: Schema; path: string }[] = [];
  private anyProc = -1;
  private subProcs = new Map<Schema, number>();

  constructor(
    readonly nfa: ByteNfa,
    private root: Schema,
    private ws: Whitespace,
  ) {}

  /** Compiles `root` (or any JSON object in objectMode), between fixed prefix and suffix text, into procedure 0. */
  compileRoot(objectMode: boolean, prefix = '', suffix = ''): void {
    const p = this.nfa.proc();
    const start = this.lit(this.nfa.procStart[p], prefix);
    const end = objectMode ? this.anyObject(start) : this.value(start, this.root, '#');
    this.nfa.epsilon(this.lit(end, suffix), this.nfa.procEnd[p]);
    while (this.pending.length) {
      const { proc, schema, path } = this.pending.pop()!;
      this.nfa.epsilon(this.value(this.nfa.procStart[proc], schema, path), this.nfa.procEnd[proc]);
    }
  }

  private fail(path: string, msg: string): never {
    throw new Error(`json schema ${path}: ${msg}`);
  }

  /** Whitespace allowed between structural tokens. */
  private space(from: number): number {
    const sp = (s: number) => this.nfa.literal(s, ' ');
    if (this.ws === 'compact') return from;
    const indent = (t: number) => this.nfa.chars(t, ofChars(' \t'));
    const nl = (s: number) => this.nfa.repeat(this.nfa.literal(s, '\n'), indent, 0, 20);
    return this.nfa.alt(from, [(s) => s, sp, nl]);
  }
  private lit(from: number, s: string): number {
    return this.nfa.literal(from, s);
  }
  private re(from: number, src: string): number {
    return this.nfa.regex(from, parseRegex(src, 'full'));
  }

  value(from: number, schema: Schema, path: string): number {
    if (schema === true) return this.callAny(from);
    if (schema === false) this.fail(path, 'false schema: no value is allowed');
    if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
      this.fail(path, 'a schema must be an object or a boolean');
    }
    const s = schema;
    this.checkKeywords(s, path);
    if (s.$ref !== undefined) return this.ref(from, s, path);
    if (s.const !== undefined || s.enum !== undefined) return this.enumValue(from, s, path);
    if (s.anyOf !== undefined) return this.anyOf(from, s, path);
    if (s.allOf !== undefined) return this.allOf(from, s, path);
    const types = this.types(s, path);
    if (!types) return this.callAny(from);
    // a keyword constrains only instances of its own type(s); one that fits none of the listed types is a mistake
    for (const k of Object.keys(s)) {
      const owners = TYPES.filter((u) => KEYWORDS[u].includes(k));
      if (owners.length && !owners.some((u) => types.includes(u))) {
        this.fail(`${path}/${k}`, `"${k}" does not apply to type ${types.join(' | ')}`);
      }
    }
    return this.nfa.alt(
      from,
      types.map((t) => (st: number) => this.typed(st, t, s, path)),
    );
  }

  private checkKeywords(s: Record<string, unknown>, path: string): void {
    const typeKeys = TYPES.flatMap((t) => KEYWORDS[t]);
    const known = new Set([...ANNOTATIONS, ...COMBINERS, ...typeKeys]);
    for (const k of Object.keys(s)) {
      if (!known.has(k)) this.fail(`${path}/${k}`, `keyword "${k}" is not supported by constrained decoding`);
    }
    // $ref / anyOf / allOf / enum / const stand alone (enum and const may name their type)
    const used = ['$ref', 'anyOf', 'allOf', 'enum', 'const', 'type', ...typeKeys].filter((k) => s[k] !== undefined);
    const lead = used.find((k) => ['$ref', 'anyOf', 'allOf', 'enum', 'const'].includes(k));
    if (!lead) return;
    const others = used.filter((k) => k !== lead && !(['enum', 'const'].includes(lead) && k === 'type'));
    const list = others.map((k) => `"${k}"`).join(', ');
    if (others.length) this.fail(path, `combining "${lead}" with ${list} is not supported`);
  }

  /** The listed or implied types, or null for "any value". */
  private types(s: Record<string, unknown>, path: string): string[] | null {
    if (s.type !== undefined) {
      const ts = Array.isArray(s.type) ? s.type : [s.type];
      for (const t of ts) {
        if (typeof t !== 'string' || !TYPES.includes(t)) this.fail(`${path}/type`, `unknown type ${JSON.stringify(t)}`);
      }
      if (!ts.length) this.fail(`${path}/type`, 'empty type list');
      return ts as string[];
    }
    const implied = TYPES.filter((t) => KEYWORDS[t].some((k) => s[k] !== undefined));
    const distinct = [...new Set(implied.map((t) => (t === 'integer' ? 'number' : t)))];
    if (distinct.length > 1) this.fail(path, `keywords of several types (${distinct.join(', ')}) without "type"`);
    return distinct.length ? distinct : null;
  }

  private typed(from: number, t: string, s: Record<string, unknown>, path: string): number {
    switch (t) {
      case 'string':
        return this.string(from, s, path);
      case 'number':
        return this.number(from, s, path, false);
      case 'integer':
        return this.number(from, s, path, true);
      case 'boolean':
        return this.nfa.alt(from, [(st) => this.lit(st, 'true'), (st) => this.lit(st, 'false')]);
      case 'null':
        return this.lit(from, 'null');
      case 'object':
        return this.object(from, s, path);
      case 'array':
        return this.array(from, s, path);
      default:
        return this.fail(path, `unknown type ${t}`);
    }
  }

  private enumValue(from: number, s: Record<string, unknown>, path: string): number {
    const values = s.const !== undefined ? [s.const] : s.enum;
    if (!Array.isArray(values) || !values.length) this.fail(`${path}/enum`, 'must be a non-empty array');
    const types = s.type === undefined ? null : new Set(Array.isArray(s.type) ? s.type : [s.type]);
    const fits = (v: unknown) => types!.has(jsonType(v)) || (types!.has('number') && jsonType(v) === 'integer');
    const ok = values.filter((v) => !types || fits(v));
    if (!ok.length) this.fail(path, 'no enum/const value has the given type');
    return this.nfa.alt(
      from,
      ok.map((v) => (st: number) => this.lit(st, JSON.stringify(v))),
    );
  }

  private anyOf(from: number, s: Record<string, unknown>, path: string): number {
    const list = s.anyOf;
    if (!Array.isArray(list) || !list.length) this.fail(`${path}/anyOf`, 'must be a non-empty array');
    const branch = (sub: unknown, i: number) => (st: number) => this.value(st, sub as Schema, `${path}/anyOf/${i}`);
    return this.nfa.alt(from, list.map(branch));
  }

  private allOf(from: number, s: Record<string, unknown>, path: string): number {
    const list = s.allOf;
    if (!Array.isArray(list) || list.length !== 1) {
      this.fail(`${path}/allOf`, 'only allOf with exactly one schema is supported');
    }
    return this.value(from, list[0] as Schema, `${path}/allOf/0`);
  }

  /** $ref: each target is one procedure, so recursion and repeated use cost one copy. */
  private ref(from: number, s: Record<string, unknown>, path: string): number {
    const ref = s.$ref;
    if (typeof ref !== 'string' || !ref.startsWith('#')) {
      this.fail(`${path}/$ref`, `only local references (#...) are supported, got ${JSON.stringify(ref)}`);
    }
    let proc = this.refProcs.get(ref);
    if (proc === undefined) {
      proc = this.nfa.proc();
      this.refProcs.set(ref, proc);
      this.pending.push({ proc, schema: resolvePointer(this.root, ref, `${path}/$ref`), path: ref });
    }
    return this.nfa.call(from, proc);
  }

  /** A sub-schema used many times (array items) as one procedure. */
  private callSub(from: number, schema: Schema, path: string): number {
    let proc = this.subProcs.get(schema);
    if (proc === undefined) {
      proc = this.nfa.proc();
      this.subProcs.set(schema, proc);
      this.pending.push({ proc, schema, path });
    }
    return this.nfa.call(from, proc);
  }

  // ---- strings

  private string(from: number, s: Record<string, unknown>, path: string): number {
    const min = natural(s.minLength, `${path}/minLength`, 0);
    const max = s.maxLength === undefined ? Infinity : natural(s.maxLength, `${path}/maxLength`, 0);
    if (max < min) this.fail(path, `maxLength ${max} < minLength ${min}`);
    let body: RegexNode | null = null;
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== 'string') this.fail(`${path}/pattern`, 'must be a string');
      body = parseRegex(s.pattern, 'search', `json schema ${path}/pattern`);
    }
    if (s.format !== undefined) {
      const f = FORMATS[s.format as string];
      const known = Object.keys(FORMATS).join(', ');
      if (!f) this.fail(`${path}/format`, `format ${JSON.stringify(s.format)} is not supported (${known})`);
      if (body) this.fail(path, 'pattern together with format is not supported');
      body = parseRegex(f, 'full');
    }
    if (body && (s.minLength !== undefined || s.maxLength !== undefined)) {
      this.fail(path, 'pattern/format together with minLength/maxLength is not supported');
    }
    let cur = this.lit(from, '"');
    if (body) cur = this.nfa.regex(cur, body, (st, set) => this.stringChars(st, set));
    else cur = this.nfa.repeat(cur, (st) => this.stringChars(st, ALL), min, max);
    return this.lit(cur, '"');
  }

  /** One decoded character from `set`, written raw or as a JSON escape (one code point either way). */
  private stringChars(from: number, set: Ranges): number {
    const branches: ((s: number) => number)[] = [];
    const plain = intersect(set, PLAIN);
    if (!isEmpty(plain)) branches.push((st) => this.nfa.chars(st, plain));
    for (const [cp, c] of Object.entries(SHORT_ESCAPES)) {
      if (intersect(set, ofRange(+cp, +cp)).length) branches.push((st) => this.lit(st, '\\' + c));
    }
    // the other control characters need \u00XX; any other BMP non-surrogate may also be \u-escaped
    const controls = subtract(intersect(set, ofRange(0, 0x1f)), normalize([8, 10, 12, 13, 9, 9]));
    if (!isEmpty(controls) || set === ALL) {
      branches.push((st) => this.unicodeEscape(st, set === ALL ? null : controls));
    }
    return this.nfa.alt(from, branches);
  }

  /** \uXXXX: every non-surrogate BMP code point (set null) or the given controls (< 0x20). */
  private unicodeEscape(from: number, controls: Ranges | null): number {
    const u = this.lit(from, '\\u');
    if (controls) {
      const hex4 = (cp: number) => (st: number) => this.lit(st, cp.toString(16).padStart(4, '0'));
      return this.nfa.alt(u, normalizeList(controls).map(hex4));
    }
    const notD = subtract(HEX, ofChars('dD'));
    const first = this.nfa.alt(u, [
      (st) => this.nfa.chars(this.nfa.chars(st, notD), HEX),
      (st) => this.nfa.chars(this.nfa.chars(st, ofChars('dD')), ofRange(48, 55)), // D800..DFFF excluded
    ]);
    return this.nfa.chars(this.nfa.chars(first, HEX), HEX);
  }

  // ---- numbers

  private number(from: number, s: Record<string, unknown>, path: string, integer: boolean): number {
    const lo = bound(s, 'minimum', 'exclusiveMinimum', path);
    const hi = bound(s, 'maximum', 'exclusiveMaximum', path);
    if (!lo && !hi) return this.re(from, integer ? INT : NUMBER);
    const src = integer ? integerRangeRegex(lo, hi) : numberRangeRegex(lo, hi);
    if (src === null) this.fail(path, 'no number satisfies minimum/maximum');
    return this.re(from, src);
  }

  // ---- objects and arrays

  private object(from: number, s: Record<string, unknown>, path: string): number {
    const props = (s.properties ?? {}) as Record<string, Schema>;
    if (typeof props !== 'object' || Array.isArray(props)) this.fail(`${path}/properties`, 'must be an object');
    const required = (s.required ?? []) as string[];
    if (!Array.isArray(required)) this.fail(`${path}/required`, 'must be an array of names');
    for (const r of required) {
      if (!(r in props)) this.fail(`${path}/required`, `required property ${JSON.stringify(r)} is not in properties`);
    }
    const extra = s.additionalProperties;
    const names = Object.keys(props);
    if (!names.length && extra !== false) {
      return this.mapObject(from, extra === undefined ? true : (extra as Schema), `${path}/additionalProperties`);
    }
    return this.fixedObject(
      from,
      names.map((n) => [n, props[n], required.includes(n)]),
      path,
    );
  }

  /**
   * Properties in schema order. Two tracks: A = nothing written yet, B = something written (the next
   * property needs a comma). A required property kills track A; an optional one may be skipped.
   */
  private fixedObject(from: number, props: [string, Schema, boolean][], path: string): number {
    let a: number | null = this.space(this.lit(from, '{'));
    let b: number | null = null;
    for (const [name, schema, req] of props) {
      const key = this.nfa.node();
      if (a !== null) this.nfa.epsilon(this.lit(a, JSON.stringify(name)), key);
      if (b !== null) this.nfa.epsilon(this.lit(this.space(this.lit(this.space(b), ',')), JSON.stringify(name)), key);
      const colon = this.space(this.lit(this.space(key), ':'));
      const done = this.value(colon, schema, `${path}/properties/${name}`);
      const nb = this.nfa.node();
      this.nfa.epsilon(done, nb);
      if (!req && b !== null) this.nfa.epsilon(b, nb);
      if (req) a = null;
      b = nb;
    }
    const end = this.nfa.node();
    if (a !== null) this.nfa.epsilon(this.lit(a, '}'), end);
    if (b !== null) this.nfa.epsilon(this.lit(this.space(b), '}'), end);
    return end;
  }

  /** Any keys, each value matching `valueSchema`. */
  private mapObject(from: number, valueSchema: Schema, path: string): number {
    const open = this.space(this.lit(from, '{'));
    const member = (st: number) => {
      const key = this.string(st, {}, path);
      const colon = this.space(this.lit(this.space(key), ':'));
      return valueSchema === true ? this.callAny(colon) : this.callSub(colon, valueSchema, path);
    };
    const more = (st: number) => member(this.space(this.lit(this.space(st), ',')));
    const some = (st: number) => this.space(this.nfa.repeat(member(st), more, 0, Infinity));
    const members = this.nfa.alt(open, [(st) => st, some]);
    return this.lit(members, '}');
  }

  private anyObject(from: number): number {
    return this.mapObject(from, true, '#');
  }

  private array(from: number, s: Record<string, unknown>, path: string): number {
    const min = natural(s.minItems, `${path}/minItems`, 0);
    const max = s.maxItems === undefined ? Infinity : natural(s.maxItems, `${path}/maxItems`, 0);
    if (max < min) this.fail(path, `maxItems ${max} < minItems ${min}`);
    const items = (s.items ?? true) as Schema;
    if (Array.isArray(items)) this.fail(`${path}/items`, 'tuple items (an array) are not supported');
    const item = (st: number) => (items === true ? this.callAny(st) : this.callSub(st, items, `${path}/items`));
    const open = this.space(this.lit(from, '['));
    const more = (st: number) => item(this.space(this.lit(this.space(st), ',')));
    const branches: ((st: number) => number)[] = [];
    if (min === 0) branches.push((st) => st);
    if (max > 0) branches.push((st) => this.space(this.nfa.repeat(item(st), more, Math.max(0, min - 1), max - 1)));
    return this.lit(this.nfa.alt(open, branches), ']');
  }

  // ---- any JSON value (one shared procedure)

  private callAny(from: number): number {
    if (this.anyProc < 0) {
      this.anyProc = this.nfa.proc();
      const start = this.nfa.procStart[this.anyProc];
      const end = this.nfa.alt(start, [
        (st) => this.anyObject(st),
        (st) => this.array(st, {}, '#'),
        (st) => this.string(st, {}, '#'),
        (st) => this.re(st, NUMBER),
        (st) => this.lit(st, 'true'),
        (st) => this.lit(st, 'false'),
        (st) => this.lit(st, 'null'),
      ]);
      this.nfa.epsilon(end, this.nfa.procEnd[this.anyProc]);
    }
    return this.nfa.call(from, this.anyProc);
  }
}

function normalizeList(r: Ranges): number[] {
  const out: number[] = [];
  for (let i = 0; i < r.length; i += 2) for (let c = r[i]; c <= r[i + 1]; c++) out.push(c);
  return out;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function natural(v: unknown, path: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new Error(`json schema ${path}: must be a non-negative integer`);
  }
  return v;
}

function bound(s: Record<string, unknown>, incl: string, excl: string, path: string): Bound | null {
  const pick = (k: string, exclusive: boolean): Bound | null => {
    const v = s[k];
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new Error(`json schema ${path}/${k}: must be a finite number`);
    }
    return { value: v, exclusive };
  };
  const a = pick(incl, false),
    b = pick(excl, true);
  if (!a || !b) return a ?? b;
  // both given: the tighter one wins
  const lower = incl === 'minimum';
  return (lower ? b.value >= a.value : b.value <= a.value) ? b : a;
}

/** Follows a local JSON pointer (#, #/$defs/x, #/properties/a/items, ...). */
export function resolvePointer(root: Schema, ref: string, path: string): Schema {
  let cur: unknown = root;
  const parts = ref === '#' ? [] : ref.slice(1).split('/').slice(1);
  if (ref !== '#' && !ref.startsWith('#/')) {
    throw new Error(`json schema ${path}: unsupported reference ${JSON.stringify(ref)}`);
  }
  for (const raw of parts) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (cur === null || typeof cur !== 'object' || !(key in (cur as object))) {
      throw new Error(`json schema ${path}: reference ${JSON.stringify(ref)} does not resolve`);
    }
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur as Schema;
}
