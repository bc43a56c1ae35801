"""The attribution methods by name, the default one and each one's default budget."""

from __future__ import annotations

from .kernel_shap import KernelShapExplainer
from .lime import LimeExplainer
from .permutation import PermutationExplainer
from .shapley import ShapleyExplainer
from .smile import SmileExplainer
from .surrogate import SURROGATE_BUDGET

METHODS: dict[str, type] = {
    "shapley": ShapleyExplainer, "permutation": PermutationExplainer, "kernelshap": KernelShapExplainer,
    "lime": LimeExplainer, "smile": SmileExplainer,
}
DEFAULT_METHOD = "kernelshap"


def default_budget(method: str, n_words: int) -> int | None:
    """Coalitions evaluated by default: all for exact Shapley (None), 4d for sampled Shapley, and
    ``SURROGATE_BUDGET`` for LIME and SMILE (twice the SMILE code's N = 64; for prompts of up to 7
    words it is every coalition; the measurement behind it is in the benchmarks' results)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    return {"shapley": None, "permutation": 4 * n_words, "kernelshap": 4 * n_words}.get(method, SURROGATE_BUDGET)
