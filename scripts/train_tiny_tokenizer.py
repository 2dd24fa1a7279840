"""Train the tiny byte-level BPE tokenizer in nemotron/data/tokenizers/tiny-bpe/.

Why: tests and smoke runs of data prep / training need a real tokenizer that is
small (2048 tokens), offline, and rebuildable. It is trained with Hugging Face
`tokenizers` on the texts of the two JSONL samples written by
scripts/make_sample_corpus.py, read in file order.

Special tokens get the first ids: <|endoftext|>=0, <|pad|>=1, <|im_start|>=2,
<|im_end|>=3, <think>=4, </think>=5. No post-processor (no automatic BOS/EOS).

Usage: .venv/bin/python scripts/train_tiny_tokenizer.py
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [
    ROOT / "nemotron/data/samples/pretrain/python_docs.jsonl",
    ROOT / "nemotron/data/samples/pretrain/python_docstrings.jsonl",
]
OUT_DIR = ROOT / "nemotron/data/tokenizers/tiny-bpe"
SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# ChatML, in Hugging Face chat_template (Jinja) format.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def iter_texts():
    for path in SAMPLES:
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)["text"]


def train() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(iter_texts(), trainer=trainer)
    for i, tok in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(tok) == i, tok
    return tokenizer


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tokenizer = train()
    tokenizer.save(str(OUT_DIR / "tokenizer.json"), pretty=True)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|pad|>",
        "model_max_length": 4096,
        "chat_template": CHAT_TEMPLATE,
    }
    with open(OUT_DIR / "tokenizer_config.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUT_DIR.relative_to(ROOT)} (vocab size {tokenizer.get_vocab_size()})")


if __name__ == "__main__":
    main()
