"""An offline CLIP tokenizer for tiny configs: byte-level BPE with no merges.

The tiny vocabulary holds the 256 byte symbols, the same symbols as word ends (``</w>``) and the
two special tokens (514 entries), so every string tokenises (one token per byte) without
downloading anything. Real configs load the SD 1.5 tokenizer from its folder instead.
"""

from __future__ import annotations

BOS_ID, EOS_ID, TINY_VOCAB_SIZE = 512, 513, 514


def _byte_symbols() -> list[str]:
    """The printable stand-in for every byte that byte-level BPE uses (GPT-2 / CLIP convention)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for _, c in sorted(zip(keep, codes))]


def tiny_vocab() -> dict[str, int]:
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = BOS_ID
    vocab["<|endoftext|>"] = EOS_ID
    return vocab


def tiny_clip_tokenizer(max_length: int = 16):
    """A CLIPTokenizer over the tiny byte vocabulary (no merges), padded to ``max_length``."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=tiny_vocab(), merges=[], model_max_length=max_length)
