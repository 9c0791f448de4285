// Incremental text of a sequence with stop strings: token text comes from the tokenizer's streaming
// decoder (a short window per token, never the whole output); text that could be the start of a stop
// string is held back until it is known not to be one, so a stop string spanning several tokens is
// caught and never shown.
export interface TextStream {
  push(id: number): string;
  flush(): string;
}

export class StopText {
  private held = '';
  private readonly longest: number;

  constructor(
    private readonly stream: TextStream | null,
    private readonly stops: readonly string[],
  ) {
    this.longest = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /**
   * adds a token; returns the text safe to show and whether a stop string ended the sequence. `armed`
   * false (fewer than minTokens new tokens so far): no stop string may end it yet, and text that already
   * holds one is shown as it is (vLLM's min_tokens); a tail that may start a stop string is still held
   * back, so a stop string completed by a later, armed token is caught
   */
  push(id: number, armed = true): { text: string; stopped: boolean } {
    if (!this.stream) return { text: '', stopped: false };
    return this.scan(this.held + this.stream.push(id), armed);
  }

  /** the rest of the text at the end of the sequence */
  finish(armed = true): string {
    if (!this.stream) return '';
    const r = this.scan(this.held + this.stream.flush(), armed);
    const out = r.stopped ? r.text : r.text + this.held;
    this.held = '';
    return out;
  }

  private scan(text: string, armed: boolean): { text: string; stopped: boolean } {
    let cut = -1;
    if (armed)
      for (const s of this.stops) {
        const i = text.indexOf(s);
        if (i >= 0 && (cut < 0 || i < cut)) cut = i;
      }
    if (cut >= 0) {
      this.held = '';
      return { text: text.slice(0, cut), stopped: true };
    }
    const keep = this.holdBack(text);
    this.held = text.slice(text.length - keep);
    return { text: text.slice(0, text.length - keep), stopped: false };
  }

  /** length of the longest tail of `text` that is a proper prefix of some stop string */
  private holdBack(text: string): number {
    for (let n = Math.min(this.longest - 1, text.length); n > 0; n--) {
      const tail = text.slice(text.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }
}
