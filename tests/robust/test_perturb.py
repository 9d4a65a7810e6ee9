"""Perturbations without resources: deterministic under a seed, at the rate asked, placeholders left alone."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from attncoach.robust.perturb import (
    CHAR_OPS,
    KEYBOARD,
    char_noise,
    eda,
    edit_word,
    editable,
    random_deletion,
    random_insertion,
    word_dropout,
    word_swap,
)

TEXT = "the service at this airport was slow but the staff were kind and the coffee tasted great today"
VOCABULARY = ["zebra", "quantum", "violin"]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _changed(before: str, after: str) -> int:
    """Words that differ, position by position (the word count must be the same)."""
    a, b = before.split(), after.split()
    assert len(a) == len(b)
    return sum(x != y for x, y in zip(a, b))


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    rest = iter(long)
    return all(word in rest for word in short)


PERTURBATIONS = {
    "char_noise": lambda text, r, g: char_noise(text, r, g),
    "word_dropout": word_dropout,
    "word_swap": word_swap,
    "random_insertion": lambda text, r, g: random_insertion(text, r, g, VOCABULARY),
    "random_deletion": random_deletion,
    "eda": lambda text, r, g: eda(text, r, g, VOCABULARY),
}


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_same_seed_same_text_another_seed_another(name):
    perturb = PERTURBATIONS[name]
    first = perturb(TEXT, 0.3, rng(1))
    assert first != TEXT
    assert perturb(TEXT, 0.3, rng(1)) == first
    assert any(perturb(TEXT, 0.3, rng(seed)) != first for seed in range(2, 6))


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_rate_zero_leaves_the_text_alone(name):
    assert PERTURBATIONS[name](TEXT, 0.0, rng()) == TEXT


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_no_perturbation_removes_every_word(name):
    for seed in range(5):
        assert PERTURBATIONS[name](TEXT, 1.0, rng(seed)).split()
        assert PERTURBATIONS[name]("alone", 1.0, rng(seed)).split()


@pytest.mark.parametrize("rate, edited", [(0.1, 2), (0.25, 4), (0.5, 9), (0.01, 1)])
def test_char_noise_edits_the_rate_of_the_words(rate, edited):
    # 18 words, every one editable: round(rate * 18) edited, at least one
    for seed in range(5):
        assert _changed(TEXT, char_noise(TEXT, rate, rng(seed))) == edited


def test_char_noise_leaves_placeholders_punctuation_and_single_letters_alone():
    text = "@user loved http this #topic ! a flight 😀 :) x"
    for seed in range(10):
        noisy = char_noise(text, 1.0, rng(seed)).split()
        for before, after in zip(text.split(), noisy):
            assert (before == after) != editable(before), (before, after)


def test_editable_words():
    assert editable("flight") and editable("B52") and editable("don't")
    assert not any(editable(w) for w in ("@alice", "@user", "http", "https://x.co", "#tag", "!!", "a", "😀"))


@pytest.mark.parametrize("op", CHAR_OPS)
def test_each_character_edit_changes_one_letter(op):
    for seed in range(20):
        word = "keyboard"
        new = edit_word(word, op, rng(seed))
        assert new != word
        if op == "swap":
            i = next(i for i, (a, b) in enumerate(zip(word, new)) if a != b)
            assert new[i] == word[i + 1] and new[i + 1] == word[i] and new[i + 2 :] == word[i + 2 :]
        elif op == "insert":
            assert len(new) == len(word) + 1 and any(new[:i] + new[i + 1 :] == word for i in range(len(new)))
        elif op == "delete":
            assert len(new) == len(word) - 1 and any(word[:i] + word[i + 1 :] == new for i in range(len(word)))
        else:
            assert len(new) == len(word) and sum(a != b for a, b in zip(word, new)) == 1


def test_keyboard_edits_use_a_neighbouring_key_and_keep_the_case():
    for seed in range(50):
        for word in ("go", "Go"):
            new = edit_word(word, "keyboard", rng(seed))
            i = next(i for i, (a, b) in enumerate(zip(word, new)) if a != b)
            assert new[i].lower() in KEYBOARD[word[i].lower()]
            assert new[i].isupper() == word[i].isupper()
    assert set(KEYBOARD["g"]) == set("rtyfhvbn") and set(KEYBOARD["q"]) == set("12was")
    assert all(key in KEYBOARD[near] for key, nears in KEYBOARD.items() for near in nears), "neighbours are mutual"


def test_a_letter_off_the_keyboard_still_changes():
    assert edit_word("éé", "keyboard", rng()) != "éé"


def test_unknown_character_edit_is_refused():
    with pytest.raises(ValueError, match="unknown character edit"):
        edit_word("word", "rotate", rng())


def test_word_dropout_removes_the_rate_of_the_words_in_order():
    for seed in range(5):
        kept = word_dropout(TEXT, 0.25, rng(seed)).split()
        assert len(kept) == 18 - 4 and _is_subsequence(kept, TEXT.split())
    assert word_dropout(TEXT, 1.0, rng()).split()[0] in TEXT.split()


def test_word_swap_moves_words_but_keeps_them_all():
    for seed in range(5):
        swapped = word_swap(TEXT, 0.2, rng(seed))
        assert Counter(swapped.split()) == Counter(TEXT.split())
        assert 0 < _changed(TEXT, swapped) <= 2 * 3  # 3 swaps (0.2 of 17 pairs) change at most 6 places
    assert word_swap("alone", 1.0, rng()) == "alone"


def test_random_insertion_adds_the_rate_of_words_from_the_vocabulary():
    for seed in range(5):
        words = random_insertion(TEXT, 0.25, rng(seed), VOCABULARY).split()
        assert len(words) == 18 + 4 and _is_subsequence(TEXT.split(), words)
        assert set(Counter(words) - Counter(TEXT.split())) <= set(VOCABULARY)


def test_random_insertion_without_vocabulary_repeats_words_of_the_text():
    words = random_insertion("red green blue", 1.0, rng(), ()).split()
    assert len(words) == 6 and set(words) <= {"red", "green", "blue"}


def test_random_deletion_deletes_each_word_with_the_rate():
    long = " ".join(f"w{i}" for i in range(1000))
    for seed in range(3):
        kept = random_deletion(long, 0.3, rng(seed)).split()
        assert 650 < len(kept) < 750 and _is_subsequence(kept, long.split())
    assert len(random_deletion(TEXT, 1.0, rng()).split()) == 1


def test_eda_applies_each_of_its_three_operations():
    seen = set()
    for seed in range(30):
        words = eda(TEXT, 0.2, rng(seed), VOCABULARY).split()
        if len(words) > 18:
            seen.add("insertion")
            assert set(Counter(words) - Counter(TEXT.split())) <= set(VOCABULARY)
        elif len(words) < 18:
            seen.add("deletion")
            assert _is_subsequence(words, TEXT.split())
        else:
            seen.add("swap")
            assert Counter(words) == Counter(TEXT.split())
    assert seen == {"insertion", "deletion", "swap"}
