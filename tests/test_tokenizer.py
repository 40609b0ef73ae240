"""CharTokenizer: ids a reader can check by hand, exact round trips, EOS, and the documented rule
for characters outside the alphabet (refused, never silently dropped)."""

import re

import pytest

from cblab_src.model.pretrained import CORPUS_PARTS, read_corpus
from cblab_src.model.tokenizer import ALPHABET, EOS_ID, CharTokenizer, to_alphabet

TOK = CharTokenizer()


def test_small_exact_example():
    # id 0 is EOS, newline is 1, space (ASCII 32) is 2, so a character with code c has id c - 30.
    assert TOK.encode("\n A~") == [1, 2, ord("A") - 30, 96]
    assert TOK.encode("Hi!") == [42, 75, 3]
    assert TOK.vocab_size == 97 == len(ALPHABET) + 1
    assert TOK.eos_id == EOS_ID == 0


def test_every_character_round_trips_alone_and_together():
    for ch in ALPHABET:
        assert TOK.decode(TOK.encode(ch)) == ch
    assert TOK.encode(ALPHABET) == list(range(1, 97))
    assert TOK.decode(TOK.encode(ALPHABET)) == ALPHABET


@pytest.mark.parametrize("part", CORPUS_PARTS)
def test_the_whole_corpus_round_trips(part):
    text = read_corpus(part)
    ids = TOK.encode(text)
    assert len(ids) == len(text) and TOK.decode(ids) == text


def test_eos_writes_nothing():
    assert TOK.decode([42, 75, EOS_ID]) == "Hi"
    assert TOK.decode([EOS_ID]) == "" and TOK.decode([]) == ""


@pytest.mark.parametrize("text, index, char", [("caf\u00e9", 3, "\u00e9"), ("a\tb", 1, "\t"),
                                               ("\u201cquoted\u201d", 0, "\u201c")])
def test_characters_outside_the_alphabet_are_refused_by_name(text, index, char):
    with pytest.raises(ValueError, match=re.escape(f"text[{index}] is {char!r}")):
        TOK.encode(text)


def test_to_alphabet_maps_typography_to_ascii_and_leaves_the_rest():
    assert to_alphabet("\u201cA\u00a0b\u2014c\u2019s\u2026\"\t\r") == '"A b-c\'s..." '
    assert TOK.encode(to_alphabet("it\u2019s")) == TOK.encode("it's")
    with pytest.raises(ValueError, match="text\\[1\\]"):
        TOK.encode(to_alphabet("x\u00fc"))       # no look-alike: still refused


@pytest.mark.parametrize("call, error, words", [
    (lambda: TOK.encode(b"bytes"), TypeError, "text must be a str"),
    (lambda: TOK.encode(None), TypeError, "text must be a str"),
    (lambda: TOK.decode([97]), ValueError, "ids"),
    (lambda: TOK.decode([-1]), ValueError, "ids"),
    (lambda: TOK.decode("abc"), TypeError, "ids"),
    (lambda: to_alphabet(3), TypeError, "text must be a str"),
    (lambda: CharTokenizer(alphabet="aa"), ValueError, "alphabet"),
    (lambda: CharTokenizer(alphabet=""), ValueError, "alphabet"),
])
def test_bad_input_is_refused_with_the_parameter_named(call, error, words):
    with pytest.raises(error, match=words):
        call()
