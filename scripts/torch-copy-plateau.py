# The copying plateau of models/calculator-chat, cross-checked in PyTorch 1.13 (Debian's python3-torch):
# the same architecture (LLaMA: RMSNorm, SwiGLU 384, RoPE, GQA 4/2 heads, hidden 128, 4 layers, tied head),
# optimizer (AdamW, wd 0, 20 warmup steps, grad clip 1) and batch (32) as `lineage align sft`, on rows
# "<|im_start|>user\nRepeat: X<|im_end|>\n<|im_start|>assistant\nX<|im_end|>\n" with X a random 6-24-character
# string (loss on the reply only). Prints the mean loss per 20 steps.
#   /usr/bin/python3 scripts/torch-copy-plateau.py STEPS LR      (measured: 1e-2 and 3e-3 stay on the plateau,
#                                                                 1e-3 leaves it by step ~250)
import math, random, string, sys, time, torch
import torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0); torch.set_num_threads(1)
steps = int(sys.argv[1]); lr = float(sys.argv[2])

def copy_rows(n, rng=random.Random(1), alpha=string.ascii_lowercase + string.digits):
    rows = []
    for _ in range(n):
        X = list(''.join(rng.choice(alpha) for _ in range(rng.randint(6, 24))).encode())
        p = [256] + list(b'user\nRepeat: ') + X + [257, 10, 256] + list(b'assistant\n')
        c = X + [257, 10]
        rows.append({'ids': p + c, 'mask': [0] * len(p) + [1] * len(c)})
    return rows
rows = copy_rows(20000)
V, D, L, H, KV, FF, B = 258, 128, 4, 4, 2, 384, 32
hd = D // H
class RMS(nn.Module):
    def __init__(s): super().__init__(); s.w = nn.Parameter(torch.ones(D))
    def forward(s, x): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * s.w
def rope(T):
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd)); f = torch.outer(torch.arange(T).float(), inv)
    e = torch.cat([f, f], -1); return e.cos(), e.sin()
def rot(x): a, b = x.chunk(2, -1); return torch.cat([-b, a], -1)
class Layer(nn.Module):
    def __init__(s):
        super().__init__(); s.n1, s.n2 = RMS(), RMS()
        s.q = nn.Linear(D, H*hd, bias=False); s.k = nn.Linear(D, KV*hd, bias=False); s.v = nn.Linear(D, KV*hd, bias=False); s.o = nn.Linear(D, D, bias=False)
        s.g = nn.Linear(D, FF, bias=False); s.u = nn.Linear(D, FF, bias=False); s.d = nn.Linear(FF, D, bias=False)
    def forward(s, x, cos, sin):
        Bn, T, _ = x.shape; h = s.n1(x)
        q = s.q(h).view(Bn, T, H, hd).transpose(1, 2); k = s.k(h).view(Bn, T, KV, hd).transpose(1, 2); v = s.v(h).view(Bn, T, KV, hd).transpose(1, 2)
        q = q*cos + rot(q)*sin; k = k*cos + rot(k)*sin
        k = k.repeat_interleave(H//KV, 1); v = v.repeat_interleave(H//KV, 1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F,'scaled_dot_product_attention') else None
        if a is None:
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd); att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float('-inf')); a = att.softmax(-1) @ v
        x = x + s.o(a.transpose(1, 2).reshape(Bn, T, D)); h = s.n2(x)
        return x + s.d(F.silu(s.g(h)) * s.u(h))
class M(nn.Module):
    def __init__(s):
        super().__init__(); s.e = nn.Embedding(V, D); s.ls = nn.ModuleList([Layer() for _ in range(L)]); s.n = RMS()
        for p in s.parameters():
            if p.dim() == 2: nn.init.normal_(p, 0, 0.02)
    def forward(s, ids):
        T = ids.shape[1]; cos, sin = rope(T); x = s.e(ids)
        for l in s.ls: x = l(x, cos, sin)
        return s.n(x) @ s.e.weight.t()
m = M(); opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0)
rng = random.Random(0); t0 = time.time(); acc = []
for step in range(steps):
    for g in opt.param_groups: g['lr'] = lr * min(1, (step + 1) / 20)
    batch = [rows[rng.randrange(len(rows))] for _ in range(B)]; T = max(len(r['ids']) for r in batch)
    ids = torch.zeros(B, T, dtype=torch.long); msk = torch.zeros(B, T)
    for i, r in enumerate(batch): ids[i, :len(r['ids'])] = torch.tensor(r['ids']); msk[i, :len(r['mask'])] = torch.tensor(r['mask'], dtype=torch.float)
    logits = m(ids[:, :-1]); lt = F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1), reduction='none').view(B, T-1)
    mm = msk[:, 1:]; loss = (lt * mm).sum() / mm.sum()
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); acc.append(loss.item())
    if (step + 1) % 20 == 0: print(step + 1, round(sum(acc)/len(acc), 3), round(time.time()-t0), flush=True); acc = []
