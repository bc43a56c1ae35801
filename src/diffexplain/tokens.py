"""Where each word of a prompt sits among a tokenizer's tokens: the one definition every part uses."""

from __future__ import annotations


def word_token_spans(tokenizer, prompt: str) -> list[tuple[int, int]]:
    """[start, end) token positions of each whitespace word of ``prompt`` (position 0 = the start token).

    Each word is tokenized alone; the spans must add up to the prompt tokenized whole, or the
    attribution of a word to its tokens would be wrong, so a tokenizer that merges across word
    boundaries is refused.

    Args:
        tokenizer: a transformers tokenizer that adds one start token (CLIP's BOS).
        prompt: the text.

    Returns:
        One (start, end) pair per word.
    """
    spans, position = [], 1
    for word in prompt.split():
        count = len(tokenizer(word, add_special_tokens=False).input_ids)
        spans.append((position, position + count))
        position += count
    total = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    if position - 1 != total:
        raise ValueError(f"tokenizing the words of {prompt!r} one by one gives {position - 1} tokens, the whole prompt "
                         f"{total}: the tokenizer merges across words, so word spans are undefined")
    return spans
