"""Issue 14's research probe, step 1: frozen SmolLM2-135M-Instruct features of (instruction,
response) items, read as a chat (user: instruction, assistant: response, the instruction's last
192 tokens and the response's first 320): the last token's and the response's mean hidden states
at layers 6, 12, 18, 24, 30, and the response's summed and mean log-likelihood.

    python scripts/research/smollm2_features.py hhh hh alpaca vicuna mt_bench autoj

(from the project root; 2 cores: about 60 minutes for all six; writes runs/research/features/).
The exact code behind the README's "Frozen SmolLM2 probes" rows; not part of the package.
"""
import os, sys, time, random, numpy as np, torch
sys.path.insert(0, ".")
from transformers import AutoModelForCausalLM, AutoTokenizer
from phudge_lightning.benchmarks import load_benchmark
from datamodules.sources import load_items
from datamodules.mixing import balance_by_length, filtered
from datamodules.records import Pair
torch.set_num_threads(2)
from datamodules.backbones import resolve_backbone
P = resolve_backbone("smollm2-135m")
os.makedirs("runs/research/features", exist_ok=True)
B = "../shared/data/benchmarks/"; T = "../shared/data/train/"
tok = AutoTokenizer.from_pretrained(P); model = AutoModelForCausalLM.from_pretrained(P, dtype=torch.float32).eval()
LAYERS = [6, 12, 18, 24, 30]
MAXI, MAXR = 192, 320

def encode(instr, resp):
    i = tok(instr, add_special_tokens=False)["input_ids"][-MAXI:]
    r = tok(resp, add_special_tokens=False)["input_ids"][:MAXR]
    pre = tok.apply_chat_template([{"role": "user", "content": "X"}], tokenize=False, add_generation_prompt=True)
    a, b = pre.split("X")
    ids_a = tok(a, add_special_tokens=False)["input_ids"]; ids_b = tok(b, add_special_tokens=False)["input_ids"]
    end = tok("<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = ids_a + i + ids_b + r + end
    start = len(ids_a) + len(i) + len(ids_b)
    return ids, start, len(ids) - 1

def feats(items, name):
    enc = [encode(ins, res) for ins, res in items]
    order = sorted(range(len(enc)), key=lambda k: len(enc[k][0]))
    out = [None] * len(enc); t0 = time.time()
    for s in range(0, len(order), 8):
        idx = order[s:s + 8]; L = max(len(enc[k][0]) for k in idx)
        x = torch.full((len(idx), L), tok.pad_token_id or 0); m = torch.zeros((len(idx), L), dtype=torch.long)
        for j, k in enumerate(idx):
            ids = enc[k][0]; x[j, :len(ids)] = torch.tensor(ids); m[j, :len(ids)] = 1
        with torch.no_grad():
            o = model(input_ids=x, attention_mask=m, output_hidden_states=True)
        lp = torch.log_softmax(o.logits.float(), -1)
        for j, k in enumerate(idx):
            ids, st, last = enc[k]
            tgt = torch.tensor(ids[st:last + 1]); tl = lp[j, st - 1:last].gather(-1, tgt[:, None])[:, 0]
            hs_last = np.concatenate([o.hidden_states[l][j, last].numpy() for l in LAYERS])
            hs_mean = np.concatenate([o.hidden_states[l][j, st:last + 1].mean(0).numpy() for l in LAYERS])
            out[k] = dict(last=hs_last, mean=hs_mean, lp_sum=tl.sum().item(), lp_mean=tl.mean().item(), n=len(tgt))
        print(name, s + len(idx), "/", len(order), f"{time.time()-t0:.0f}s", flush=True)
    np.savez(f"runs/research/features/{name}.npz", last=np.stack([o["last"] for o in out]), mean=np.stack([o["mean"] for o in out]),
             lp_sum=np.array([o["lp_sum"] for o in out]), lp_mean=np.array([o["lp_mean"] for o in out]), n=np.array([o["n"] for o in out]))

def bench(name, file):
    b = load_benchmark(name, B + file, rubric_free=True, reference_free=True)
    return [(r.instruction, r.response) for r in b.records()]

def pairs(path, n, seed, where=None, balance=False):
    items, _, _ = load_items(path, skip_invalid=True)
    items = [p for p in items if isinstance(p, Pair)]
    if where: items = filtered(items, where)
    if balance: items = balance_by_length(items, seed)
    random.Random(seed).shuffle(items); items = items[:n]
    lab = np.array([1.0 if p.label == "a" else 0.0 if p.label == "b" else 0.5 for p in items])
    pref = np.array([getattr(p, "preference", None) if getattr(p, "preference", None) is not None else np.nan for p in items], dtype=float)
    groups = np.array([p.instruction for p in items])
    return [(r.instruction, r.response) for p in items for r in (p.a, p.b)], lab, pref, groups

which = sys.argv[1:]
for w in which:
    if w in ("hhh", "vicuna", "mt_bench"):
        feats(bench(w, {"hhh": "hhh_alignment_eval.json", "vicuna": "vicuna_eval.json", "mt_bench": "mt_bench_eval.json"}[w]), w)
    elif w == "hh":
        it, lab, pref, g = pairs(T + "hh_rlhf_harmless_pairs.jsonl.gz", 700, 1); np.savez("runs/research/features/hh_lab.npz", lab=lab, pref=pref, g=g); feats(it, w)
    elif w == "alpaca":
        it, lab, pref, g = pairs(T + "alpaca_eval_gpt4_pairs.parquet", 800, 2, where={"annotator": "weighted_alpaca_eval_gpt4_turbo"}, balance=True)
        np.savez("runs/research/features/alpaca_lab.npz", lab=lab, pref=pref, g=g); feats(it, w)
    elif w == "autoj":
        items, _, _ = load_items(T + "autoj_single_gpt4.jsonl", skip_invalid=True)
        random.Random(3).shuffle(items); items = items[:400]
        np.savez("runs/research/features/autoj_lab.npz", score=np.array([r.score for r in items]), g=np.array([r.instruction for r in items]))
        feats([(r.instruction, r.response) for r in items], w)
