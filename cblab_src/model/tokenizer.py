"""A character-level tokenizer: text in, token ids out, and back.

The alphabet is fixed: newline plus the 95 printable ASCII characters (space to ``~``). Id 0 is
the end-of-sequence token (EOS); character ``ALPHABET[i]`` has id ``i + 1``, so the vocabulary
has 97 ids. One character is one token, which makes a prompt's length in tokens the length of
its text - the easiest tokenizer to reason about when counting a step's token budget. Real
servers use sub-word tokenizers (BPE, SentencePiece) whose tokens are pieces of words; the
scheduler does not care, it only ever sees ids.

The rule for text outside the alphabet: :meth:`CharTokenizer.encode` refuses it with a
``ValueError`` that names the character and its index (nothing is silently dropped or mapped,
so ``decode(encode(text)) == text`` for every text ``encode`` accepts). :func:`to_alphabet`
is the explicit, documented way to turn typographic characters (curly quotes, dashes,
non-breaking spaces, tabs) into their ASCII look-alikes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._validate import token_ids

ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
EOS_ID = 0

# Look-alikes that to_alphabet() replaces; anything else outside ALPHABET stays and is refused.
_ASCII_LOOKALIKES = {
    "\t": " ", "\r": "", "\u00a0": " ", "\u2018": "'", "\u2019": "'", "\u201c": '"',
    "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2026": "...",
}


def to_alphabet(text: str) -> str:
    """Replace tabs, carriage returns, non-breaking spaces, curly quotes, en/em dashes and the
    ellipsis character by ASCII look-alikes. Other characters are left for ``encode`` to judge."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {text!r} ({type(text).__name__})")
    return text.translate(str.maketrans(_ASCII_LOOKALIKES))


@dataclass(frozen=True)
class CharTokenizer:
    """Maps each character of :data:`ALPHABET` to one id; id :data:`EOS_ID` ends a sequence.

    >>> tok = CharTokenizer()
    >>> tok.encode("Hi!")
    [42, 75, 3]
    >>> tok.decode([42, 75, 3, tok.eos_id])
    'Hi!'
    """

    alphabet: str = ALPHABET
    eos_id: int = EOS_ID
    _ids: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.alphabet, str):
            raise TypeError(f"alphabet must be a str, got {self.alphabet!r}")
        if not isinstance(self.eos_id, int) or isinstance(self.eos_id, bool):
            raise TypeError(f"eos_id must be an int, got {self.eos_id!r}")
        if self.eos_id != EOS_ID:                  # characters take ids 1 .. len(alphabet)
            raise ValueError(f"eos_id must be {EOS_ID} (characters have ids 1 and up), got "
                             f"{self.eos_id!r}")
        if len(set(self.alphabet)) != len(self.alphabet) or not self.alphabet:
            raise ValueError(f"alphabet must be non-empty with no repeated character, "
                             f"got {self.alphabet!r}")
        object.__setattr__(self, "_ids", {ch: i + 1 for i, ch in enumerate(self.alphabet)})

    @property
    def vocab_size(self) -> int:
        """Number of ids: the alphabet plus EOS."""
        return len(self.alphabet) + 1

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text``. Raises ``ValueError`` at the first character
        outside the alphabet, naming it and its index."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {text!r} ({type(text).__name__})")
        try:
            return [self._ids[ch] for ch in text]
        except KeyError:
            index = next(i for i, ch in enumerate(text) if ch not in self._ids)
            ch = text[index]
            raise ValueError(f"text[{index}] is {ch!r} (U+{ord(ch):04X}), which is not in the "
                             f"tokenizer's alphabet (newline and printable ASCII); "
                             f"to_alphabet() maps quotes and dashes to ASCII") from None

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``. EOS marks where a sequence ends and writes nothing, so
        ``decode(completion)`` of a request that stopped on EOS is just its words."""
        if isinstance(ids, (Sequence, np.ndarray)) and not isinstance(ids, (str, bytes)) \
                and len(ids) == 0:
            return ""
        checked = token_ids("ids", ids, vocab_size=self.vocab_size)   # a set is refused too
        return "".join(self.alphabet[i - 1] for i in checked if i != self.eos_id)
