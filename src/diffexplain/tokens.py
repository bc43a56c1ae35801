"""Where each word of a prompt sits among a tokenizer's tokens: the one definition every part uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def word_token_spans(tokenizer: Any, prompt: str | Sequence[str], start: int = 1) -> list[tuple[int, int]]:
    """[start, end) token positions of each whitespace word of ``prompt`` in its encoded form.

    Each word is tokenized alone; the spans must add up to the prompt tokenized whole, or the
    attribution of a word to its tokens would be wrong, so a tokenizer that merges across word
    boundaries is refused.

    Args:
        tokenizer: a transformers tokenizer.
        prompt: the text, or its words (the text is then the words joined by spaces; a word may be
            empty, and then has an empty span).
        start: special tokens before the text (1: CLIP's and Gemma's start token; 0: T5).

    Returns:
        One (start, end) pair per word.
    """
    words = prompt.split() if isinstance(prompt, str) else list(prompt)
    text = prompt if isinstance(prompt, str) else " ".join(w for w in words if w)
    spans, position = [], start
    for word in words:
        count = len(tokenizer(word, add_special_tokens=False).input_ids) if word else 0
        spans.append((position, position + count))
        position += count
    total = len(tokenizer(text, add_special_tokens=False).input_ids)
    if position - start != total:
        raise ValueError(f"tokenizing the words of {text!r} one by one gives {position - start} tokens, "
                         f"the whole prompt {total}: the tokenizer merges across words, so word spans are undefined")
    return spans


def special_tokens_before(tokenizer: Any) -> int:
    """How many special tokens the tokenizer puts before the text (CLIP and Gemma: 1, T5: 0)."""
    plain = tokenizer("red", add_special_tokens=False).input_ids
    full = tokenizer("red").input_ids
    for offset in range(len(full) - len(plain) + 1):
        if full[offset:offset + len(plain)] == plain:
            return offset
    raise ValueError(f"{type(tokenizer).__name__} does not keep the text's tokens in order when it adds special tokens")


def special_tokens_after(tokenizer: Any) -> int:
    """How many special tokens the tokenizer puts after the text (CLIP and T5: the end token; Gemma: 0)."""
    extra = len(tokenizer("red").input_ids) - len(tokenizer("red", add_special_tokens=False).input_ids)
    return extra - special_tokens_before(tokenizer)
