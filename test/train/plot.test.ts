import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  barChart,
  escapeXml,
  expertLoadHeatmap,
  expertLoadOverSteps,
  formatTick,
  heatmap,
  lineChart,
  logTicks,
  lossChart,
  niceTicks,
  viridis,
} from '../../src/train/plot.js';

/** Minimal XML well-formedness check: balanced tags, quoted attributes, valid entities, one root. */
function checkXml(xml: string): { root: string; tags: Map<string, number> } {
  const tags = new Map<string, number>();
  const stack: string[] = [];
  let root = '';
  const entity = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
  const checkText = (s: string, where: string) => {
    for (let i = 0; i < s.length; i++) {
      if (s[i] === '<') throw new Error(`raw '<' in ${where}`);
      if (s[i] === '&') {
        entity.lastIndex = i;
        if (!entity.test(s)) throw new Error(`bad entity in ${where}: ${s.slice(i, i + 10)}`);
      }
    }
  };
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    if (lt < 0) {
      checkText(xml.slice(i), 'text');
      break;
    }
    checkText(xml.slice(i, lt), 'text');
    const gt = xml.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = xml.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const m = /^([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*\/?$/.exec(tag);
    if (!m) throw new Error(`malformed tag <${tag}>`);
    const names = [...m[2].matchAll(/([\w:-]+)="([^"]*)"/g)];
    const seen = new Set<string>();
    for (const [, n, v] of names) {
      if (seen.has(n)) throw new Error(`duplicate attribute ${n} in <${m[1]}>`);
      seen.add(n);
      checkText(v, `attribute ${n}`);
    }
    if (stack.length === 0) {
      if (root) throw new Error('more than one root element');
      root = m[1];
    }
    tags.set(m[1], (tags.get(m[1]) ?? 0) + 1);
    if (!selfClosing) stack.push(m[1]);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('><')}>`);
  return { root, tags };
}

function curve(n: number, f: (i: number) => number): [number, number][] {
  return Array.from({ length: n }, (_, i) => [i, f(i)]);
}

test('checkXml rejects malformed documents', () => {
  assert.throws(() => checkXml('<svg><g></svg>'));
  assert.throws(() => checkXml('<svg a="1" a="2"/>'));
  assert.throws(() => checkXml('<svg>a & b</svg>'));
  checkXml('<svg><text>a &amp; b</text></svg>');
});

test('ticks and labels', () => {
  assert.deepEqual(niceTicks(0, 5000), [0, 1000, 2000, 3000, 4000, 5000]);
  assert.deepEqual(niceTicks(1.43, 4.4), [1.5, 2, 2.5, 3, 3.5, 4]);
  assert.deepEqual(logTicks(1e-5, 1e-1), [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
  assert.deepEqual(logTicks(0.9, 20), [1, 2, 5, 10, 20]);
  assert.ok(logTicks(1.4, 4.5).length >= 4);
  assert.equal(formatTick(25000), '25k');
  assert.equal(formatTick(0.0001), '1e-4');
  assert.equal(formatTick(0.25), '0.25');
  assert.equal(escapeXml('a<b & "c"'), 'a&lt;b &amp; &quot;c&quot;');
  assert.equal(viridis(0), '#440154');
  assert.equal(viridis(1), '#fde725');
});

test('lineChart: well-formed SVG with every series, title, labels and legend', () => {
  const train = curve(2000, (i) => 4.2 * Math.exp(-i / 400) + 1.4 + 0.1 * Math.sin(i * 1.7));
  const val = curve(11, (k) => 4.2 * Math.exp(-(k * 200) / 400) + 1.5).map(
    ([k, v]) => [k * 200, v] as [number, number],
  );
  for (const logY of [false, true]) {
    const svg = lossChart(train, val, { logY, smooth: 0.9, title: 'shakespeare-char <gpt>' });
    const { root, tags } = checkXml(svg);
    assert.equal(root, 'svg');
    assert.match(svg, /data-name="train"/);
    assert.match(svg, /data-name="val"/);
    assert.match(svg, /shakespeare-char &lt;gpt&gt;/);
    assert.match(svg, />step</);
    assert.match(svg, />loss</);
    assert.ok((tags.get('circle') ?? 0) >= 11, 'val markers');
    assert.ok(svg.length < 200_000, `svg size ${svg.length}`);
  }
  const gaps = lineChart({
    series: [
      {
        name: 'lr',
        points: [
          [0, 1],
          [1, NaN],
          [2, 3],
          [3, -1],
        ],
      },
    ],
    logY: true,
  });
  checkXml(gaps);
  assert.equal((gaps.match(/<path d="M[^"]*M/g) ?? []).length, 1, 'NaN breaks the line into two subpaths');
});

test('heatmap and bar charts for MoE expert load', () => {
  const counts = Array.from({ length: 6 }, (_, l) =>
    Array.from({ length: 8 }, (_, e) => 100 + ((l * 37 + e * 11) % 50) * (e === l ? 4 : 1)),
  );
  const svg = expertLoadHeatmap(counts);
  const { tags } = checkXml(svg);
  assert.ok((tags.get('rect') ?? 0) >= 48);
  assert.match(svg, /uniform = 0\.13/);
  assert.match(svg, /linearGradient/);
  const over = expertLoadOverSteps(
    [0, 100, 200],
    [
      [5, 1],
      [3, 3],
      [2, 4],
    ],
  );
  checkXml(over);
  assert.match(over, />E1</);
  const bars = barChart({
    categories: counts[0].map((_, e) => `E${e}`),
    series: [
      { name: 'layer 0', values: counts[0] },
      { name: 'layer 5', values: counts[5] },
    ],
    reference: { value: 150, label: 'uniform' },
    title: 'Tokens per expert',
    xLabel: 'expert',
    yLabel: 'tokens',
  });
  checkXml(bars);
  assert.match(bars, /data-name="layer 5"/);
  checkXml(
    barChart({
      categories: ['a', 'b'],
      series: [
        { name: 'x', values: [1, 2] },
        { name: 'y', values: [3, 1] },
      ],
      stacked: true,
    }),
  );
  checkXml(
    heatmap({
      values: [
        [NaN, 1],
        [2, 3],
      ],
      showValues: true,
    }),
  );
});
