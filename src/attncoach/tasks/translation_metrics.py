"""Translation metrics: sacrebleu's corpus BLEU and chrF, with the signatures that make them comparable.

sacrebleu is the optional extra ``translation``: ``pip install 'attncoach[translation]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attncoach.errors import AttncoachError


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF of detokenised hypotheses against one reference each.

    sacrebleu's defaults throughout (BLEU: 13a tokenisation, case-sensitive, exponential
    smoothing; chrF: character 6-grams, beta 2), so the scores compare with published ones
    that carry the same signature.

    Args:
        hypotheses: the system's translations, as plain text.
        references: the reference translation of each, in the same order.

    Returns:
        ``{"bleu", "chrf"}`` on sacrebleu's 0-100 scale, ``{"bleu_signature", "chrf_signature"}``
        (such as ``"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"``) and ``"n"``.

    Raises:
        AttncoachError: sacrebleu is not installed, no sentence, or the two lists differ in length.

    Example:
        >>> scores = corpus_scores(["the cat sat on the mat"], ["the cat sat on the mat"])
        >>> round(scores["bleu"], 6), round(scores["chrf"], 6)
        (100.0, 100.0)
    """
    if len(hypotheses) != len(references):
        raise AttncoachError(
            f"cannot score {len(hypotheses)} translations against {len(references)} references: one each is needed"
        )
    if not hypotheses:
        raise AttncoachError("no translations to score")
    try:
        from sacrebleu.metrics import BLEU, CHRF
    except ImportError:
        raise AttncoachError("BLEU and chrF need the package sacrebleu: pip install 'attncoach[translation]'") from None
    bleu, chrf = BLEU(), CHRF()
    refs = [list(references)]  # sacrebleu takes one list per reference stream
    return {
        "bleu": float(bleu.corpus_score(list(hypotheses), refs).score),
        "chrf": float(chrf.corpus_score(list(hypotheses), refs).score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "n": len(hypotheses),
    }
