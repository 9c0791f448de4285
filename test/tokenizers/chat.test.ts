// Chat templates rendered with @huggingface/jinja as transformers' apply_chat_template(tokenize=False).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { gpt2TokenizerJson } from './helpers.js';

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const LLAMA2 =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

function chatTokenizer(template: string, config: Record<string, unknown> = {}): Tokenizer {
  const j = gpt2TokenizerJson() as any;
  j.added_tokens.push(
    {
      id: 50257,
      content: '<|im_start|>',
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    },
    {
      id: 50258,
      content: '<|im_end|>',
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    },
  );
  return Tokenizer.fromJSON(j, { chat_template: template, bos_token: '<s>', eos_token: '</s>', ...config });
}

const CHAT = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Hello!' },
  { role: 'assistant', content: 'Hi there.' },
  { role: 'user', content: 'How are you?' },
];

test('ChatML template renders exactly, with and without the generation prompt', () => {
  const tok = chatTokenizer(CHATML);
  const expected =
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n' +
    '<|im_start|>assistant\nHi there.<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n';
  assert.equal(tok.applyChatTemplate(CHAT), expected);
  assert.equal(tok.applyChatTemplate(CHAT, { addGenerationPrompt: true }), expected + '<|im_start|>assistant\n');
});

test("encodeChat splits the template's special tokens out", () => {
  const tok = chatTokenizer(CHATML);
  const ids = tok.encodeChat([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
  assert.equal(ids[0], 50257);
  assert.equal(ids.filter((i) => i === 50257).length, 2);
  assert.equal(ids.filter((i) => i === 50258).length, 1);
  assert.equal(tok.decode(ids), '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
});

test('LLaMA-2 template: bos_token/eos_token variables, system prompt, raise_exception', () => {
  const j = gpt2TokenizerJson() as any;
  j.added_tokens.push(
    { id: 50257, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 50258, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  );
  const tok = Tokenizer.fromJSON(j, { chat_template: LLAMA2, bos_token: { content: '<s>' }, eos_token: '</s>' });
  assert.equal(tok.specialTokens.bos?.id, 50257);
  assert.equal(
    tok.applyChatTemplate(CHAT),
    '<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there. </s><s>[INST] How are you? [/INST]',
  );
  assert.throws(
    () => tok.applyChatTemplate([{ role: 'assistant', content: 'x' }]),
    /Conversation roles must alternate/,
  );
});

test('trim_blocks / lstrip_blocks behave as in transformers', () => {
  const tpl =
    '{% for m in messages %}\n    {% if m.role == "user" %}\nU: {{ m.content }}\n    {% else %}\nA: {{ m.content }}\n    {% endif %}\n{% endfor %}\n';
  const tok = chatTokenizer(tpl);
  assert.equal(
    tok.applyChatTemplate([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'yo' },
    ]),
    'U: hi\nA: yo\n',
  );
});

test('named templates, overrides, extra variables, and clear errors', () => {
  const tok = chatTokenizer('', {
    chat_template: [
      { name: 'default', template: 'D{{ messages|length }}' },
      { name: 'tool_use', template: 'T{{ tools|length }}' },
    ],
  });
  assert.equal(tok.applyChatTemplate(CHAT), 'D4');
  assert.equal(tok.applyChatTemplate(CHAT, { chatTemplate: 'tool_use', tools: [{}, {}] }), 'T2');
  assert.equal(tok.applyChatTemplate(CHAT, { chatTemplate: '{{ x }}-{{ eos_token }}', extra: { x: 7 } }), '7-</s>');
  const cfg = tok.toConfigJSON() as any;
  assert.deepEqual(
    cfg.chat_template.map((t: any) => t.name),
    ['default', 'tool_use'],
  );
  const plain = Tokenizer.fromJSON(gpt2TokenizerJson());
  assert.throws(() => plain.applyChatTemplate(CHAT), /has no chat_template/);
  assert.throws(() => tok.applyChatTemplate(CHAT, { chatTemplate: '{% for %}' }), /cannot parse chat_template/);
});

test('withAddedTokens + withChatTemplate turn a base tokenizer into a chat tokenizer', () => {
  const base = Tokenizer.fromJSON(gpt2TokenizerJson());
  const chat = base
    .withAddedTokens(['<|im_start|>', '<|im_end|>', '<|endoftext|>'], {
      roles: { pad: '<|endoftext|>', eos: '<|im_end|>' },
    })
    .withChatTemplate(CHATML);
  assert.equal(base.vocabSize, 50257, 'the original is unchanged');
  assert.equal(chat.vocabSize, 50259);
  assert.equal(chat.tokenToId('<|im_start|>'), 50257);
  assert.equal(chat.tokenToId('<|endoftext|>'), 50256);
  assert.equal(chat.specialTokens.eos?.id, 50258);
  assert.equal(chat.specialTokens.pad?.id, 50256);
  const ids = chat.encodeChat([{ role: 'user', content: 'Hi' }]);
  assert.deepEqual(ids.slice(0, 1), [50257]);
  assert.equal(chat.decode(ids), '<|im_start|>user\nHi<|im_end|>\n');
  const again = Tokenizer.fromJSON(chat.toJSON(), chat.toConfigJSON());
  assert.equal(
    again.applyChatTemplate([{ role: 'user', content: 'Hi' }]),
    chat.applyChatTemplate([{ role: 'user', content: 'Hi' }]),
  );
  assert.deepEqual(again.specialTokens, chat.specialTokens);
  // roles changed on a tokenizer loaded with a config win over the config's old entries
  const fromCfg = Tokenizer.fromJSON(gpt2TokenizerJson(), { eos_token: '<|endoftext|>' }).withAddedTokens(
    ['<|im_end|>'],
    { roles: { eos: '<|im_end|>' } },
  );
  assert.equal(fromCfg.toConfigJSON().eos_token, '<|im_end|>');
  assert.equal(fromCfg.applyChatTemplate([], { chatTemplate: '{{ eos_token }}' }), '<|im_end|>');
});
