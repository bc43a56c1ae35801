"""Realistic tokenizers for the tiny family pipelines, trained offline on a small corpus with small
vocabularies, so they behave as the real ones do where word location can go wrong:

- ``clip_bpe``: CLIP's BPE (lower-cases, ``</w>`` word ends, start and end tokens, a 77 window);
  most words are several pieces ("circle" -> "cir", "cle</w>").
- ``t5_unigram``: T5's SentencePiece-style unigram with ``▁`` word starts, case-sensitive ("Red" and
  "red" differ), ``</s>`` appended, no start token.
- ``gemma_bpe``: Gemma's BPE over ``▁``-joined text with no prefix space and a ``<bos>`` start
  token: a word alone ("red") tokenizes differently from the same word after a space ("▁red").
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "a big red circle on the left", "A BIG Red circle on the LEFT", "a small blue square at the top",
    "the green triangle is in the centre", "there is a purple circle and an orange square",
    "picture of a yellow triangle at the bottom right", "image with a gray background",
    "Please make the circle blue, then move it to the right!", "two circles: one red; one green.",
    "An old photograph of a lighthouse at dusk, highly detailed, 4k", "Red circle? Blue square.",
    "make it bigger and add a shadow", "replace the square with a triangle", "a cat's house",
    "the quick brown fox jumps over the lazy dog", "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
    "0123456789 .,;:!?'\"()[]{}<>/\\-_+=*&^%$#@~`|",
]


def _corpus() -> list[str]:
    from diffexplain_shapes.scene import vocabulary

    words = vocabulary()
    return CORPUS * 20 + [" ".join(words)] * 5 + [w.capitalize() for w in words]


def clip_bpe(directory: Path, vocab_size: int = 150, max_length: int = 77):
    """A CLIP tokenizer (``CLIPTokenizer``) with a BPE trained to ``vocab_size`` tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, end_of_word_suffix="</w>",
                                  special_tokens=["<|startoftext|>", "<|endoftext|>"], show_progress=False)
    bpe.train_from_iterator(_corpus(), trainer)
    bpe.model.save(str(directory))
    return CLIPTokenizer.from_pretrained(str(directory), model_max_length=max_length, local_files_only=True)


def t5_unigram(directory: Path, vocab_size: int = 200, max_length: int = 512):
    """A case-sensitive unigram tokenizer in T5's conventions (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    unigram.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    unigram.train_from_iterator(_corpus(), trainer)
    unigram.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=unigram, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=max_length, padding_side="right")
    fast.save_pretrained(str(directory))
    return PreTrainedTokenizerFast.from_pretrained(str(directory))


def gemma_bpe(directory: Path, vocab_size: int = 220, max_length: int = 512):
    """A Gemma-style BPE: spaces become ``▁`` with no prefix space, ``<bos>`` first, no end token."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    bpe.decoder = decoders.Sequence([decoders.Replace("▁", " ")])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"], show_progress=False)
    bpe.train_from_iterator(_corpus(), trainer)
    bpe.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>", model_max_length=max_length, padding_side="right")
    fast.save_pretrained(str(directory))
    return PreTrainedTokenizerFast.from_pretrained(str(directory))
