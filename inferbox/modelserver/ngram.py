"""A small, deterministic text generator: a word-level trigram model with back-off.

It needs no downloaded weights: it is trained on text that ships with Python or with a package the
platform already installs, once (at image build time, or on first start, cached on disk):

- ``ngram-pydoc``: the topics of Python's own language reference (``pydoc_data``, part of the
  standard library);
- ``ngram-sklearn``: the descriptions of scikit-learn's bundled datasets.

Generation is greedy and reproducible: the most frequent continuation of the last two tokens, ties
broken alphabetically, never the same trigram twice in one answer (so it does not loop), backing off
to the last token alone; it stops when nothing is left to say or at ``max_tokens``. The same prompt
always gives the same answer, and every token it emits is one token of ``usage``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inferbox.model_kinds import GENERATIVE_ARTIFACTS
from inferbox.modelserver.artifacts import cache_dir

TOKEN = re.compile(r"[A-Za-z0-9_']+|[^\sA-Za-z0-9_']")
# Words the model would otherwise start from when a prompt shares no word with its corpus.
FALLBACK_START = ("the",)


def tokenize(text: str) -> list[str]:
    """Words, numbers and single punctuation marks: the model's tokens (``usage`` counts these)."""
    return TOKEN.findall(text)


def detokenize_piece(token: str, first: bool) -> str:
    """How a token is appended to text already written: punctuation sticks to the word before it."""
    opening = "([{\"'"
    if first or (len(token) == 1 and not token.isalnum() and token not in opening):
        return token
    return " " + token


def _corpus(artifact: str) -> str:
    if artifact == "ngram-pydoc":
        from pydoc_data.topics import topics

        return "\n".join(topics[name] for name in sorted(topics))
    if artifact == "ngram-sklearn":
        import sklearn

        folder = Path(sklearn.__file__).parent / "datasets" / "descr"
        return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.rst")))
    raise ValueError(f"unknown generative artifact {artifact!r}; known: {', '.join(GENERATIVE_ARTIFACTS)}")


@dataclass(frozen=True)
class Generation:
    tokens: tuple[str, ...]
    finish_reason: str  # "length" when max_tokens cut it, "stop" when the model had nothing more


class NgramModel:
    """Trigram and bigram continuation counts over lower-cased tokens."""

    def __init__(self, trigrams: dict[str, dict[str, int]], bigrams: dict[str, dict[str, int]]) -> None:
        self.trigrams = trigrams  # "w1 w2" -> next -> count
        self.bigrams = bigrams  # "w1" -> next -> count

    @classmethod
    def train(cls, text: str) -> NgramModel:
        tokens = [t.lower() for t in tokenize(text)]
        trigrams: dict[str, Counter[str]] = defaultdict(Counter)
        bigrams: dict[str, Counter[str]] = defaultdict(Counter)
        for a, b in itertools.pairwise(tokens):
            bigrams[a][b] += 1
        for a, b, c in zip(tokens, tokens[1:], tokens[2:], strict=False):
            trigrams[f"{a} {b}"][c] += 1
        return cls({k: dict(v) for k, v in trigrams.items()}, {k: dict(v) for k, v in bigrams.items()})

    def to_json(self) -> str:
        return json.dumps({"trigrams": self.trigrams, "bigrams": self.bigrams}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NgramModel:
        data = json.loads(text)
        return cls(data["trigrams"], data["bigrams"])

    @staticmethod
    def _best(candidates: dict[str, int], exclude: set[str]) -> str | None:
        ranked = sorted((-count, token) for token, count in candidates.items() if token not in exclude)
        return ranked[0][1] if ranked else None

    def stream(self, prompt_tokens: list[str], max_tokens: int) -> Iterator[str]:
        """The answer's tokens one by one; ends early when no continuation is left."""
        context = [t.lower() for t in prompt_tokens if t.lower() in self.bigrams][-2:] or list(FALLBACK_START)
        used: set[tuple[str, str, str]] = set()
        for _ in range(max_tokens):
            token = None
            if len(context) >= 2:
                pair = (context[-2], context[-1])
                tried = {c for (a, b, c) in used if (a, b) == pair}
                token = self._best(self.trigrams.get(" ".join(pair), {}), tried)
            if token is None:
                last = context[-1]
                tried = {c for (_, b, c) in used if b == last}
                token = self._best(self.bigrams.get(last, {}), tried)
            if token is None:
                return
            if len(context) >= 2:
                used.add((context[-2], context[-1], token))
            else:
                used.add(("", context[-1], token))
            context = [*context[-1:], token]
            yield token

    def generate(self, prompt_tokens: list[str], max_tokens: int) -> Generation:
        tokens = tuple(self.stream(prompt_tokens, max_tokens))
        return Generation(tokens, "length" if len(tokens) == max_tokens else "stop")


def model_path(artifact: str) -> Path:
    # The corpus of ngram-pydoc is the running Python's own documentation; keep one cache per version.
    return cache_dir() / f"{artifact}-py{sys.version_info.major}.{sys.version_info.minor}.json"


def load_ngram(artifact: str) -> NgramModel:
    """The trained model, trained on first use and cached (written atomically: parallel starts are safe)."""
    path = model_path(artifact)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(NgramModel.train(_corpus(artifact)).to_json(), encoding="utf-8")
        os.replace(tmp, path)
    return NgramModel.from_json(path.read_text(encoding="utf-8"))
