import numpy as np

from diffexplain.data import ground_truth_prompts
from diffexplain.metrics import ranks_aligned, rmse_normalised


def test_ten_prompts_one_score_per_word_each_row_sums_to_one():
    prompts = ground_truth_prompts()
    assert len(prompts) == 10
    for item in prompts:
        assert len(item.words) == len(item.importance)
        assert abs(item.importance.sum() - 1.0) < 1e-9
    assert prompts[2].prompt == "a dog wearing hat"
    np.testing.assert_allclose(prompts[2].importance, [0.05, 0.45, 0.20, 0.30])


def test_metrics_run_on_the_dataset():
    prompts = ground_truth_prompts()
    uniform = [np.ones(len(p.words)) for p in prompts]
    scores = [ranks_aligned(u, p.importance) for u, p in zip(uniform, prompts)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert rmse_normalised(prompts[0].importance, prompts[0].importance) == 0.0
