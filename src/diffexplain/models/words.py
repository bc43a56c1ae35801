"""Where each word of a prompt lands in the text context the denoiser receives, for every encoder.

A word's positions are found in the very text the pipeline tokenizes (after its own preprocessing:
PixArt and Sana lower-case and may clean the caption; Sana prepends an instruction), tokenized with
the pipeline's own arguments (window, padding, truncation), then mapped back to the prompt's words
by character offsets (fast tokenizers) or word by word (slow tokenizers, whose pre-tokenizer never
merges across whitespace). A word an encoder cuts off has no positions in that encoder's segment;
a word no encoder reads is refused.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

Span = tuple[int, int] | None


@dataclasses.dataclass(frozen=True)
class EncoderReading:
    """What one text encoder reads of a prompt.

    Attributes:
        attribute: the pipeline attribute of the encoder ("text_encoder_2").
        label: what the encoder is ("CLIP-L", "CLIP-G", "T5", "Gemma", or "CLIP" for other sizes).
        offset: where its tokens start in the denoiser's text context; None when it only gives a
            pooled vector (Flux's CLIP).
        spans: per word, its [start, end) context positions, or None where the encoder cut it off.
        window: how many tokens it reads (special tokens included).
    """

    attribute: str
    label: str
    offset: int | None
    spans: tuple[Span, ...]
    window: int

    @property
    def seen(self) -> tuple[bool, ...]:
        return tuple(span is not None for span in self.spans)

    def describe(self, words: list[str]) -> str:
        """E.g. "CLIP-L (pooled) saw words 1-75 of 100"."""
        seen = [i for i, s in enumerate(self.spans) if s is not None]
        role = " (pooled)" if self.offset is None else ""
        if len(seen) == len(words):
            return f"{self.label}{role} saw every word"
        if not seen:
            return f"{self.label}{role} saw none of the {len(words)} words"
        return f"{self.label}{role} saw words {seen[0] + 1}-{seen[-1] + 1} of {len(words)}"


def tokenizer_attribute(encoder_attribute: str) -> str:
    """The pipeline attribute of an encoder's tokenizer: ``text_encoder_2`` -> ``tokenizer_2``."""
    return encoder_attribute.replace("text_encoder", "tokenizer")


def call_default(pipe: Any, name: str, override: dict[str, Any]) -> Any:
    """``override[name]`` if given, else the default of the pipeline's ``__call__`` argument ``name``
    (PixArt-α's ``max_sequence_length`` is 120, PixArt-Σ's 300: read, not assumed)."""
    if name in override:
        return override[name]
    parameter = inspect.signature(pipe.__call__).parameters.get(name)
    return None if parameter is None else parameter.default


def preprocessed(pipe: Any, text: str, options: dict[str, Any]) -> str:
    """The text as the pipeline hands it to its tokenizer: PixArt and Sana lower-case it (and clean
    it when ``clean_caption`` is on and its libraries are installed), through their own function."""
    process = getattr(pipe, "_text_preprocessing", None)
    if process is None:
        return text
    return process(text, clean_caption=bool(call_default(pipe, "clean_caption", options)))[0]


def _word_chars(text: str, words: list[str], pipe, options: dict[str, Any], processed: str) -> list[tuple[int, int]]:
    """[start, end) character span of each word in the preprocessed text: each word, preprocessed
    alone, found in order; a word's span runs to the next word's start (less white space), so
    punctuation the cleaning kept stays with its word."""
    if processed == text:
        pieces = words
    else:
        pieces = [preprocessed(pipe, w, options) for w in words]
    starts, cursor = [], 0
    for word, piece in zip(words, pieces):
        start = processed.find(piece, cursor) if piece else -1
        if piece and start < 0:
            raise ValueError(f"{type(pipe).__name__} rewrites the prompt {text!r} across words before encoding it "
                             f"(to {processed!r}; {word!r} is not in it as {piece!r}): word positions are undefined; "
                             "turn caption cleaning off with --pipeline-arg clean_caption=false "
                             "(Python: pipeline_kwargs={'clean_caption': False})")
        starts.append(start)
        if piece:
            cursor = start + len(piece)
    chars = []
    for i, start in enumerate(starts):
        if start < 0:  # the cleaning removed the word: no characters, no tokens
            chars.append((cursor, cursor))
            continue
        following = [s for s in starts[i + 1:] if s >= 0]
        end = following[0] if following else len(processed)
        end = start + len(processed[start:end].rstrip())
        chars.append((start, end))
    return chars


def _spans_by_offsets(tokenizer, encoded_text: str, chars: list[tuple[int, int]], shift: int,
                      call: dict[str, Any]) -> list[Span]:
    """Token positions of each word from the fast tokenizer's character offsets."""
    out = tokenizer(encoded_text, return_offsets_mapping=True, return_special_tokens_mask=True, **call)
    per_word: list[list[int]] = [[] for _ in chars]
    pending: list[int] = []  # whitespace-only tokens (a lone "▁") belong to the word that follows
    for index, ((a, b), special) in enumerate(zip(out["offset_mapping"], out["special_tokens_mask"])):
        if special:
            continue
        a, b = a - shift, b - shift
        owners = [w for w, (s, e) in enumerate(chars) if a < e and s < b]
        if len(owners) > 1:
            raise ValueError(f"{type(tokenizer).__name__} merges words {owners} into one token: word spans undefined")
        if not owners:
            if a >= 0 and not encoded_text[a + shift:b + shift].strip():
                pending.append(index)
            continue
        per_word[owners[0]].extend(pending + [index])
        pending = []
    spans: list[Span] = []
    for positions in per_word:
        if not positions:
            spans.append(None)
            continue
        spans.append((min(positions), max(positions) + 1))
    return spans


def _spans_word_by_word(tokenizer, words: list[str], start: int, limit: int) -> list[Span]:
    """Slow tokenizers (CLIP's BPE splits at whitespace first): ``tokens.word_token_spans``, with
    no span for a word that has no tokens or whose last token lies past ``limit`` (cut off)."""
    from ..tokens import word_token_spans

    return [(a, b) if a < b <= limit else None for a, b in word_token_spans(tokenizer, words, start=start)]


def _limit(tokenizer, window: int) -> int:
    """The last position a text token may take: the window less the end tokens the tokenizer adds."""
    from ..tokens import special_tokens_after

    return window - special_tokens_after(tokenizer)


def read(pipe: Any, roles: list[tuple[str, int | None, str, str]], prompt: str, options: dict[str, Any],
         sana: bool = False) -> list[EncoderReading]:
    """Locate ``prompt``'s words for each encoder in ``roles``.

    Args:
        pipe: the pipeline.
        roles: (encoder attribute, context offset or None for pooled-only, window kind, label) per
            encoder; window kind "tokenizer" (CLIP: its ``model_max_length``) or "sequence" (T5 /
            Gemma: the call's ``max_sequence_length``); label: what users call the encoder.
        prompt: the text.
        options: the pipeline call's extra keyword arguments (``max_sequence_length``, ``clean_caption``,
            ``complex_human_instruction``).
        sana: locate after the instruction prefix and keep the start token plus the last
            ``max_sequence_length - 1`` positions, as ``SanaPipeline.encode_prompt`` does.
    """
    words = prompt.split()
    processed = preprocessed(pipe, prompt, options)
    chars = _word_chars(prompt, words, pipe, options, processed)
    readings = []
    for attribute, offset, kind, label in roles:
        tokenizer = getattr(pipe, tokenizer_attribute(attribute))
        window = int(tokenizer.model_max_length) if kind == "tokenizer" else \
            int(call_default(pipe, "max_sequence_length", options))
        if sana:
            spans, window = _sana_spans(pipe, tokenizer, processed, chars, window, options)
        elif getattr(tokenizer, "is_fast", False):
            spans = _spans_by_offsets(tokenizer, processed, chars, 0,
                                      dict(padding="max_length", max_length=window, truncation=True))
        else:
            from ..tokens import special_tokens_before

            spans = _spans_word_by_word(tokenizer, [processed[a:b] for a, b in chars],
                                        special_tokens_before(tokenizer), _limit(tokenizer, window))
        if offset is not None:
            spans = [None if s is None else (s[0] + offset, s[1] + offset) for s in spans]
        readings.append(EncoderReading(attribute, label, offset, tuple(spans), window))
    return readings


def _sana_spans(pipe, tokenizer, processed: str, chars, window: int, options) -> tuple[list[Span], int]:
    instruction = call_default(pipe, "complex_human_instruction", options)
    if instruction:
        prefix = "\n".join(instruction)
        length_all = len(tokenizer.encode(prefix)) + window - 2
    else:
        prefix, length_all = "", window
    tokenizer.padding_side = "right"  # as the pipeline sets it
    spans = _spans_by_offsets(tokenizer, prefix + processed, chars, len(prefix),
                              dict(padding="max_length", max_length=length_all, truncation=True))
    # the pipeline keeps position 0 and the last window - 1 positions of the length_all it encoded
    first_kept = length_all - window + 1
    kept: list[Span] = []
    for span in spans:
        if span is None or span[0] < first_kept:
            kept.append(None)
        else:
            kept.append((span[0] - first_kept + 1, span[1] - first_kept + 1))
    return kept, window


def require_seen(words: list[str], readings: list[EncoderReading], prompt: str) -> None:
    """Raise ValueError naming the words no encoder reads (the pipeline would drop them silently)."""
    unseen = [i for i in range(len(words)) if not any(r.spans[i] is not None for r in readings)]
    if unseen:
        windows = ", ".join(f"{r.label} {r.window}" for r in readings)
        shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
        raise ValueError(f"prompt is longer than every text encoder reads (tokens: {windows}): {len(unseen)} word(s) "
                         f"from word {unseen[0] + 1} ({words[unseen[0]]!r}) on would be cut off; shorten it: {shown!r}")


def context_spans(readings: list[EncoderReading], prompt: str) -> list[tuple[int, int]]:
    """Each word's [start, end) positions in the denoiser's text context that its attention maps
    are read from: the last encoder with positions there (SD3: T5, or CLIP without it; Flux: T5;
    Sana: after its instruction prefix).

    Raises:
        ValueError: naming the words that encoder cuts off (they have no attention).
    """
    reading = [r for r in readings if r.offset is not None][-1]
    cut = [w for w, span in zip(prompt.split(), reading.spans) if span is None]
    if cut:
        raise ValueError(f"{reading.label} cuts off {', '.join(repr(w) for w in cut)} of {prompt!r}: those "
                         "words have no attention maps; shorten the prompt")
    return [(int(span[0]), int(span[1])) for span in reading.spans if span is not None]
