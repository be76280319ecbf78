#!/usr/bin/env python3
"""Reference data for PruneKit's BERT-family tests: randomly initialised BERT encoders of several
configurations, run through HuggingFace transformers and sentence-transformers.

The weights are not committed. Each tensor is a deterministic function of the configuration's
seed and the tensor's HuggingFace name (splitmix64 of FNV-1a, the same generator as
Tests/PruneKitTests/BertFamilyTests.swift), so the tests rebuild the exact same model.safetensors
and only the small files are committed, under Tests/PruneKitTests/Fixtures/bert_family/NAME/:
config.json, vocab.txt, tokenizer_config.json, the sentence-transformers module files, and
expected.json (seed, the sentences, sentence-transformers' token ids and embeddings).

Usage: python scripts/make_bert_family_fixtures.py [--folders DIR [--vocab FILE]]
  --folders DIR also writes each complete model folder (with model.safetensors) under DIR, for
  scripts/compare_minilm_torch.py --model DIR/NAME and the CLI.
  --vocab FILE gives those folders a real vocabulary (e.g. models/all-MiniLM-L6-v2/vocab.txt, 30,522
  tokens) instead of the fixtures' small one, so that throughput is measured on real token counts;
  the fixtures themselves are unchanged.
Needs torch, transformers and sentence-transformers in a virtual environment outside the repository.
"""
import argparse, json, os, re, shutil, tempfile, unicodedata
import numpy as np
import torch
import transformers
import sentence_transformers
from safetensors.numpy import save_file
from sentence_transformers import SentenceTransformer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "PruneKitTests", "Fixtures", "bert_family")

SENTENCES = [
    "Pruning removes weights that matter little.",
    "a",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Sparse networks can be as accurate as dense ones, if they are fine-tuned.",
    "It's 3:45 p.m. and the train to Zürich is late... again.",
    "Café au lait, crème brûlée and a naïve façade.",
    "Straße, Mädchen und Äpfel sind deutsche Wörter.",
    "我喜欢机器学习。",
    "Emoji 🙂 and symbols ★ should not crash anything ✓",
    "Tabs\tand\nnewlines are whitespace;   multiple   spaces too.",
    "UPPER CASE words and MixedCase Words keep their case when cased.",
    "Numbers: 1, 22, 333, 3.14159, -17, +42.",
    "Unbelievably, the untranslatable antidisestablishmentarianism was tokenized.",
    " ".join(["A long sentence that runs past the maximum length of the smallest configuration"] * 4),
]

# name: (seed, config.json fields, tokenizer options, sentence-transformers modules or None)
CONFIGS = {
    # MiniLM-L12 shape: 12 layers × 384, mean pooling, normalised, uncased
    "l12_h384_mean": (1, dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536,
                              vocab_size=None, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                              layer_norm_eps=1e-12),
                      dict(do_lower_case=True, cased=False, max_seq_length=128), ("mean", True)),
    # base width, few layers, a small vocabulary table, tanh GELU, max pooling without Normalize,
    # lower-cased but keeping accents
    "l4_h768_max": (2, dict(hidden_size=768, num_hidden_layers=4, num_attention_heads=12, intermediate_size=3072,
                            vocab_size=None, max_position_embeddings=128, type_vocab_size=1, hidden_act="gelu_new",
                            layer_norm_eps=1e-5),
                    dict(do_lower_case=True, strip_accents=False, cased=False, max_seq_length=64), ("max", False)),
    # BGE-style: [CLS] pooling, normalised, cased tokenizer, ReLU feed-forward, short maximum length
    "l3_h256_cls_cased": (3, dict(hidden_size=256, num_hidden_layers=3, num_attention_heads=4, intermediate_size=1024,
                                  vocab_size=None, max_position_embeddings=64, type_vocab_size=2, hidden_act="relu",
                                  layer_norm_eps=1e-12),
                          dict(do_lower_case=False, cased=True, max_seq_length=24), ("cls", True)),
}

M64 = (1 << 64) - 1


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def uniform(seed, n):
    """n values in [-1, 1), exactly k / 2^23: splitmix64 of seed + (i + 1)·golden, top 24 bits."""
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64)
    return ((u - 8388608.0) / 8388608.0).astype(np.float32)


def tensor(config_seed, name, shape):
    v = uniform(fnv1a(name) ^ config_seed, int(np.prod(shape))).reshape(shape)
    if name.endswith("LayerNorm.weight"):
        return np.float32(1) + v * np.float32(0.25)
    if name.endswith("LayerNorm.bias"):
        return v * np.float32(0.125)
    if name.startswith("embeddings."):
        return v * np.float32(0.5)
    return v * np.float32(0.0625)


def strip_accents(w):
    return "".join(c for c in unicodedata.normalize("NFD", w) if unicodedata.category(c) != "Mn")


def vocabulary(cased, strip):
    """Specials, every character of the sentences (and its ## form) but 'q' and 'Q' (unknown
    words), some whole words, some suffix pieces: words split into pieces, others stay whole."""
    text = " ".join(SENTENCES)
    if not cased:
        text = text.lower()
    if strip:
        text = strip_accents(text)
    words = sorted(set(re.findall(r"\w+", text)))
    chars = sorted(set(c for c in text if not c.isspace() and c not in "qQ"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += chars + ["##" + c for c in chars if c.isalnum()]
    vocab += [w for k, w in enumerate(words) if k % 3 != 0 and "q" not in w.lower()]  # two words in three whole
    vocab += ["##ing", "##ed", "##s", "##er", "##tion", "##ly", "##able", "##ize", "un", "##ism", "##ment"]
    seen, out = set(), []
    for t in vocab:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def write_folder(name, folder, with_weights, vocab_file=None):
    seed, cfg, tok, modules = CONFIGS[name]
    os.makedirs(folder, exist_ok=True)
    vocab = vocabulary(tok["cased"], tok.get("strip_accents", not tok["cased"]) and not tok["cased"])
    if vocab_file:
        vocab = open(vocab_file, encoding="utf-8").read().splitlines()
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    config = dict(cfg, model_type="bert", architectures=["BertModel"], pad_token_id=0, position_embedding_type="absolute")
    config["vocab_size"] = len(vocab) + 37  # a table with rows the vocabulary does not use
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    tc = {"tokenizer_class": "BertTokenizer", "do_lower_case": tok["do_lower_case"], "tokenize_chinese_chars": True,
          "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
          "model_max_length": 512}
    if "strip_accents" in tok:
        tc["strip_accents"] = tok["strip_accents"]
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)
    if modules:
        mode, normalize = modules
        with open(os.path.join(folder, "sentence_bert_config.json"), "w") as f:
            json.dump({"max_seq_length": tok["max_seq_length"], "do_lower_case": False}, f, indent=2)
        mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if normalize:
            mods.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        with open(os.path.join(folder, "modules.json"), "w") as f:
            json.dump(mods, f, indent=2)
        os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
        with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": cfg["hidden_size"], "pooling_mode_cls_token": mode == "cls",
                       "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": mode == "max",
                       "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=2)
    if with_weights:
        hf = transformers.BertModel(transformers.BertConfig(**config))
        state = {k: tensor(seed, k, tuple(v.shape)) for k, v in hf.state_dict().items() if not k.endswith("position_ids")}
        save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    return seed, config, vocab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folders", help="also write complete model folders here")
    ap.add_argument("--vocab", help="vocabulary of the --folders models (default: the fixtures' own)")
    a = ap.parse_args()
    torch.manual_seed(0)
    for name in CONFIGS:
        work = tempfile.mkdtemp()
        seed, config, vocab = write_folder(name, work, True)
        m = SentenceTransformer(work, device="cpu")
        ids = m.tokenize(SENTENCES)["input_ids"]
        mask = m.tokenize(SENTENCES)["attention_mask"]
        ids = [[int(t) for t, k in zip(row, mk) if k] for row, mk in zip(ids.tolist(), mask.tolist())]
        emb = m.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
        dest = os.path.join(OUT, name)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(work, dest, ignore=shutil.ignore_patterns("model.safetensors"))
        expected = {"seed": seed, "transformers": transformers.__version__,
                    "sentence_transformers": sentence_transformers.__version__, "torch": torch.__version__,
                    "sentences": [{"text": s, "ids": i, "embedding": [round(float(x), 7) for x in e]}
                                  for s, i, e in zip(SENTENCES, ids, emb)]}
        with open(os.path.join(dest, "expected.json"), "w", encoding="utf-8") as f:
            json.dump(expected, f, ensure_ascii=False, indent=0)
        if a.folders:
            target = os.path.join(a.folders, name)
            shutil.rmtree(target, ignore_errors=True)
            if a.vocab:
                write_folder(name, target, True, a.vocab)
            else:
                shutil.copytree(work, target)
        shutil.rmtree(work)
        print(f"{name}: {config['num_hidden_layers']} layers × {config['hidden_size']}, vocab {len(vocab)} tokens "
              f"(table {config['vocab_size']}), ids of the last sentence {len(ids[-1])}")


if __name__ == "__main__":
    main()
