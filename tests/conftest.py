import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

# 2 threads (CI's cores), or OMP_NUM_THREADS when set (a run sharing the machine with another job)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or max(1, min(2, os.cpu_count() or 1))))
torch.set_flush_denormal(True)


@pytest.fixture(scope="session")
def shapes_pipe():
    """The shipped shapes text-to-image pipeline (loaded once per session)."""
    from diffexplain_shapes import pipelines as shapes

    return shapes.load("text2image")
