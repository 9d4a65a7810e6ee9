"""TextAttack's DeepWordBug recipe (Gao et al. 2018) against a black-box classifier, where it can run.

TextAttack is not a dependency of attncoach: installed with its own dependencies it pins old
versions of packages attncoach uses, and importing it needs NLTK's stopwords corpus, which
``nltk.download`` fetches from outside PyPI. Where ``import textattack`` works (your own
environment, with the corpus in ``NLTK_DATA``), the robustness report runs the recipe on the
same examples and budget as the built-in attack; elsewhere its row says, in one line, why not.

Example:
    >>> row = deepwordbug_row(probabilities, ["a good day"], [1], budget=50)  # doctest: +SKIP
    >>> row["ran"], row.get("reason")                                         # doctest: +SKIP
    (False, 'textattack not installed')
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from attncoach.robust.attack import AttackResult, Probabilities, attack_summary

NAME = "deepwordbug"
DESCRIPTION = "TextAttack DeepWordBug recipe"


def deepwordbug_row(
    probabilities: Probabilities, texts: Sequence[str], gold: Sequence[int], budget: int
) -> dict[str, Any]:
    """The report's row for DeepWordBug on ``texts``: as :func:`attncoach.robust.attack.attack_summary`
    with ``"ran": true``, or ``{"ran": false, "reason": ...}`` when TextAttack is missing or fails."""
    row: dict[str, Any] = {"name": NAME, "description": DESCRIPTION, "ran": False, "query_budget": budget}
    try:
        attack = _recipe(probabilities, budget)
    except Exception as exc:  # an optional third-party library that cannot start offline: reported, not raised
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "textattack"
        row["reason"] = "textattack not installed" if missing else f"textattack cannot run here: {_line(exc)}"
        if isinstance(exc, LookupError):  # NLTK data: nltk.download fetches it from outside PyPI
            row["reason"] += " (NLTK data that nltk.download fetches)"
        return row
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the report (--json)
            results = [_result(attack.attack(text, int(label)), text, int(label)) for text, label in zip(texts, gold)]
    except Exception as exc:
        row["reason"] = f"textattack failed: {_line(exc)}"
        return row
    summary = attack_summary(results, budget)
    return {**summary, "name": NAME, "description": DESCRIPTION, "seconds": time.perf_counter() - start}


def _recipe(probabilities: Probabilities, budget: int) -> Any:
    """DeepWordBugGao2018 around ``probabilities``, stopping each example at ``budget`` queries."""
    with contextlib.redirect_stdout(sys.stderr):
        import textattack
        from textattack.attack_recipes import DeepWordBugGao2018

    class Wrapped(textattack.models.wrappers.ModelWrapper):
        model = None

        def __call__(self, text_input_list: list[str]) -> Any:
            return probabilities(list(text_input_list))

    attack = DeepWordBugGao2018.build(Wrapped())
    attack.goal_function.query_budget = budget
    attack.goal_function.batch_size = 256
    return attack


def _result(result: Any, text: str, gold: int) -> AttackResult:
    """A TextAttack attack result as an :class:`AttackResult`."""
    from textattack.attack_results import SkippedAttackResult, SuccessfulAttackResult

    original = result.original_result.attacked_text
    perturbed = result.perturbed_result
    return AttackResult(
        text=text,
        gold=gold,
        success=isinstance(result, SuccessfulAttackResult),
        skipped=isinstance(result, SkippedAttackResult),
        queries=int(perturbed.num_queries),
        words=max(1, len(original.words)),
        edited=len(original.all_words_diff(perturbed.attacked_text)),
        adversarial=perturbed.attacked_text.text,
        predicted=int(perturbed.output),
        gold_probability=float(perturbed.raw_output[gold]),
    )


def _line(exc: BaseException) -> str:
    """The exception's type and the first line of its message that says something (NLTK's start with rules)."""
    lines = [line.strip(" *") for line in str(exc).splitlines()]
    said = next((line for line in lines if any(ch.isalnum() for ch in line)), "")
    return f"{type(exc).__name__}: {said}" if said else type(exc).__name__


__all__ = ["deepwordbug_row"]
