// The one flag parser every `lineage` command uses, so that flags behave and fail the same way
// everywhere: `--name value`, `--name=value`, boolean `--name`; repeated flags accumulate; `--help` / `-h`
// are always accepted. Errors name the flag and what it expects: `--steps: expected an integer >= 0, got "ten"`.
// Handlers throw these errors without the "lineage <command>:" prefix: main adds it when it prints them.

export interface ParsedFlags {
  values: Map<string, string[]>;
  bools: Set<string>;
  /** arguments that are not options, in order (only commands that declare positionals get any) */
  positionals: string[];
  /** `--help` or `-h` was given: the command prints its usage and does nothing else */
  help: boolean;
}

export interface FlagOptions {
  /** positional arguments the command accepts (default 0), e.g. `lineage inspect TARGET` */
  positionals?: number;
  /** shown in errors about positionals, e.g. 'preset or model directory' */
  positionalName?: string;
}

/** Parses argv against the command's flag names; unknown names and missing values throw. */
export function parseFlags(
  cmd: string,
  argv: readonly string[],
  valued: readonly string[],
  booleans: readonly string[],
  o: FlagOptions = {},
): ParsedFlags {
  const f: ParsedFlags = { values: new Map(), bools: new Set(), positionals: [], help: false };
  const seeHelp = `see 'lineage ${cmd} --help'`;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      f.help = true;
      continue;
    }
    if (!a.startsWith('--')) {
      if (f.positionals.length < (o.positionals ?? 0)) {
        f.positionals.push(a);
        continue;
      }
      const why = o.positionals
        ? `only ${o.positionals} ${o.positionalName ?? 'argument'} expected`
        : 'options start with --';
      throw new Error(`unexpected argument ${JSON.stringify(a)} (${why}; ${seeHelp})`);
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (booleans.includes(name)) {
      if (eq >= 0) throw new Error(`--${name}: takes no value, got ${JSON.stringify(a.slice(eq + 1))}`);
      f.bools.add(name);
    } else if (valued.includes(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new Error(`--${name}: expected a value (${seeHelp})`);
      // `--out --steps 5` forgot the value of --out: do not swallow the next option as it
      if (eq < 0 && v.startsWith('--') && v.length > 2) {
        throw new Error(`--${name}: expected a value, got the option ${v}`);
      }
      f.values.set(name, [...(f.values.get(name) ?? []), v]);
    } else {
      const known = [...valued, ...booleans, 'help'].map((n) => '--' + n).join(' ');
      throw new Error(`unknown option --${name} (options of 'lineage ${cmd}': ${known})`);
    }
  }
  return f;
}

/** the last value given for a flag */
export const flagString = (f: ParsedFlags, name: string): string | undefined => f.values.get(name)?.at(-1);

/** a required valued flag; `what` names its value in the message, e.g. 'DIR' → "--model DIR is required" */
export function flagRequired(f: ParsedFlags, name: string, what: string, usage?: string): string {
  const v = flagString(f, name);
  if (v === undefined || v === '') throw new Error(`--${name} ${what} is required${usage ? `\n${usage}` : ''}`);
  return v;
}

export interface NumberRule {
  int?: boolean;
  min?: number;
  max?: number;
}

function describe(r: NumberRule): string {
  const kind = r.int ? 'an integer' : 'a number';
  if (r.min !== undefined && r.max !== undefined) return `${kind} in [${r.min}, ${r.max}]`;
  if (r.min !== undefined) return `${kind} >= ${r.min}`;
  if (r.max !== undefined) return `${kind} <= ${r.max}`;
  return kind;
}

/** parses one numeric value against a rule; `label` is what the error names (usually `--flag`) */
export function parseNumber(label: string, s: string, r: NumberRule = {}): number {
  const v = Number(s);
  const ok =
    s.trim() !== '' &&
    Number.isFinite(v) &&
    (!r.int || Number.isInteger(v)) &&
    (r.min === undefined || v >= r.min) &&
    (r.max === undefined || v <= r.max);
  if (!ok) throw new Error(`${label}: expected ${describe(r)}, got ${JSON.stringify(s)}`);
  return v;
}

/** a numeric flag (undefined when absent) */
export function flagNumber(f: ParsedFlags, name: string, r: NumberRule = {}): number | undefined {
  const s = flagString(f, name);
  return s === undefined ? undefined : parseNumber(`--${name}`, s, r);
}

/** a comma-separated list of numbers, e.g. `--threads 1,2` */
export function flagNumberList(f: ParsedFlags, name: string, r: NumberRule = {}): number[] | undefined {
  const s = flagString(f, name);
  if (s === undefined) return undefined;
  const parts = s.split(',').map((x) => x.trim());
  if (parts.some((p) => p === '')) {
    throw new Error(
      `--${name}: expected comma-separated ${describe(r).replace(/^an? /, '')}s, got ${JSON.stringify(s)}`,
    );
  }
  return parts.map((p) => parseNumber(`--${name}`, p, r));
}

/** a flag whose value is one of a fixed set */
export function flagChoice<T extends string>(f: ParsedFlags, name: string, choices: readonly T[]): T | undefined {
  const s = flagString(f, name);
  if (s === undefined) return undefined;
  if (!(choices as readonly string[]).includes(s)) {
    throw new Error(`--${name}: expected ${choices.join(' | ')}, got ${JSON.stringify(s)}`);
  }
  return s as T;
}
