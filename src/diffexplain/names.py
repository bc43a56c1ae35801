"""The names the library accepts for its embedders and similarities, and their defaults: a module
without heavy imports, so the command line builds its choices without loading torch."""

from __future__ import annotations

EMBEDDERS = ("pixel", "latent", "efficientnet", "clip", "dinov2")
DEFAULT_EMBEDDER = "efficientnet"
SIMILARITIES = ("cosine", "wasserstein", "neg_l2")
# -L2 ranks content words above fillers best on the shapes world: cosine ignores a change of scale
# and W1 ignores which dimension changed (docs/methods.md, "Similarity").
DEFAULT_SIMILARITY = "neg_l2"
