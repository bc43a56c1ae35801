"""The family homes: registry by pipeline class, each family's rules (batch layout, layers, packed
latents), perturbations as objects, one settings value, and results as plain data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffexplain.models import families
from diffexplain.models.families import FAMILIES, conditional_rows, find_family
from diffexplain.models.perturbations import DropWords, EmptyEmbedding, ReplaceWords, perturbation_from

PROMPT = "a big red circle"


# -- registry -----------------------------------------------------------------------------------
def test_every_family_is_found_by_each_of_its_classes_and_by_a_users_subclass():
    import diffusers

    for family in FAMILIES.values():
        for name in family.classes:
            cls = getattr(diffusers, name, None)
            if cls is None:  # a class this diffusers version lacks
                continue
            assert find_family(object.__new__(cls)) is family, name
            mine = type(f"My{name}", (cls,), {})
            assert find_family(object.__new__(mine)) is family, name
    # a class merely named like a diffusers pipeline is not one
    impostor = type("StableDiffusionPipeline", (), {})
    assert find_family(impostor()) is None


def test_a_new_family_is_one_registered_class(tmp_path):
    """The seam a new family uses: a Family subclass registered by its diffusers class."""
    import diffusers

    from diffexplain.models.families.base import _BY_CLASS, _BY_DENOISER

    class LDM3D(families.Family):  # derives from no registered class: refused until registered
        name, title = "ldm3d", "LDM3D"
        classes = ("StableDiffusionLDM3DPipeline",)
        denoiser_classes = ()

    pipe = object.__new__(diffusers.StableDiffusionLDM3DPipeline)
    assert find_family(pipe) is None
    try:
        families.register(LDM3D)
        assert find_family(pipe).title == "LDM3D"
        with pytest.raises(ValueError, match="registered twice"):
            families.register(LDM3D)
    finally:
        FAMILIES.pop("ldm3d", None)
        _BY_CLASS.pop("StableDiffusionLDM3DPipeline", None)
        assert not [k for k, f in _BY_DENOISER.items() if f.name == "ldm3d"]
    assert find_family(pipe) is None


# -- batch layouts ------------------------------------------------------------------------------
class _Guided:
    """A pipeline that says during its call whether it guides (as diffusers' SD pipelines do)."""

    def __init__(self, guided: bool, image_guidance: float | None = None):
        self._guided = guided
        if image_guidance is not None:
            self.image_guidance_scale = image_guidance

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guided

    def __call__(self, prompt: str) -> None: ...


class _Silent:
    """A pipeline that decides inside __call__ (PixArt, SDXL InstructPix2Pix)."""

    def __call__(self, prompt: str, guidance_scale: float = 4.5) -> None: ...


class _SilentPix2Pix:
    def __call__(self, prompt: str, guidance_scale: float = 5.0, image_guidance_scale: float = 1.5) -> None: ...


@pytest.mark.parametrize("pipe,guidance,options,layout", [
    (_Guided(True), None, {}, "cfg"),
    (_Guided(False), 7.5, {}, "none"),  # LCM: says no guidance whatever the scale
    (_Guided(True, image_guidance=1.5), None, {}, "pix2pix"),
    (_Silent(), 4.5, {}, "cfg"),
    (_Silent(), 1.0, {}, "none"),
    (_SilentPix2Pix(), 5.0, {}, "pix2pix"),
    (_SilentPix2Pix(), 5.0, {"image_guidance_scale": 0.5}, "none"),
    (_SilentPix2Pix(), 1.0, {}, "none"),
])
def test_the_batch_layout_rule_of_the_guided_families(pipe, guidance, options, layout):
    for name in ("sd", "sdxl", "sd3", "pixart", "sana"):
        assert FAMILIES[name].batch_layout(pipe, guidance, options) == layout


def test_flux_has_one_row_per_image_and_an_undecided_pipeline_is_refused():
    assert FAMILIES["flux"].batch_layout(_Silent(), 3.5, {}) == "none"
    with pytest.raises(RuntimeError, match="does not say whether its batch holds unconditional rows"):
        FAMILIES["sd"].batch_layout(_Silent())


@pytest.mark.parametrize("layout,batch,rows", [("cfg", 4, (2, 4)), ("pix2pix", 6, (0, 2)), ("none", 3, (0, 3))])
def test_conditional_rows(layout, batch, rows):
    assert conditional_rows(layout, batch) == slice(*rows)


@pytest.mark.parametrize("layout,batch", [("cfg", 3), ("pix2pix", 4)])
def test_a_batch_that_does_not_split_is_an_error(layout, batch):
    with pytest.raises(RuntimeError, match=f"batch layout '{layout}'"):
        conditional_rows(layout, batch)


def test_flux_reads_its_packed_grid_from_the_image_ids_and_skips_kontext_reference_tokens():
    ids = torch.zeros(4 * 6 + 4, 3)
    ids[:24, 1] = torch.arange(4).repeat_interleave(6)
    ids[:24, 2] = torch.arange(6).repeat(4)
    ids[24:, 0] = 1  # a reference image's tokens
    grid, tokens = FAMILIES["flux"].latent_grid(torch.zeros(1, 28, 64), {"img_ids": ids})
    assert grid == (4, 6) and tokens == 24
    assert FAMILIES["sd"].latent_grid(torch.zeros(2, 4, 8, 12), {}) == ((8, 12), None)


# -- perturbations ------------------------------------------------------------------------------
def test_perturbations_name_each_coalition_exactly():
    mask = np.array([1, 0, 1, 0], bool)
    assert DropWords().conditioning(PROMPT, mask) == "a red"
    assert ReplaceWords("thing").conditioning(PROMPT, mask) == "a thing red thing"
    assert EmptyEmbedding().conditioning(PROMPT, mask) == "empty_embedding:a big red circle|1010"
    assert [perturbation_from(s) for s in ("drop", "empty_embedding", "replace:thing")] == \
        [DropWords(), EmptyEmbedding(), ReplaceWords("thing")]
    assert ReplaceWords("thing").spec == "replace:thing"


@pytest.mark.parametrize("spec", ["mask", "replace", "replace:", "drop:x", "empty_embedding:1"])
def test_a_bad_perturbation_spec_is_named(spec):
    with pytest.raises(ValueError, match="perturbation must be one of 'drop', 'empty_embedding', 'replace:TOKEN'"):
        perturbation_from(spec)


def test_a_replacement_must_be_one_word():
    with pytest.raises(ValueError, match="one word"):
        ReplaceWords("two words")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    from diffexplain.models.adapter import TextToImageAdapter
    from tests.helpers import tiny_text2image

    pipe, _, _ = tiny_text2image(tmp_path_factory.mktemp("tiny"))
    return TextToImageAdapter(pipe, num_inference_steps=2, guidance_scale=2.0, batch_size=4)


def test_replace_words_sends_the_replaced_text_and_keys_the_cache_by_it(adapter):
    from diffexplain.explain.api import explain_prompt

    masks = np.array([[1, 0, 1, 1], [0, 1, 1, 1]], bool)
    images = ReplaceWords("small").generate(adapter, PROMPT, masks, [0, 1])
    np.testing.assert_array_equal(images, adapter.generate(["a small red circle", "small big red circle"], [0, 1]))
    explanation = explain_prompt(adapter, PROMPT, method="shapley", seeds=1, embedder="pixel",
                                 perturbation="replace:small")
    assert explanation.settings["perturbation"] == "replace:small"
    assert "small small small small" in explanation.coalition_texts  # the empty coalition
    from diffexplain.models.adapter import TextToImageAdapter
    from diffexplain.models.defaults import PipelineDefaults

    closed = PipelineDefaults(name="tiny", vocabulary=("a", "big", "small", "red", "circle")).check_vocabulary
    strict = TextToImageAdapter(adapter.pipe, num_inference_steps=2, vocabulary_check=closed)
    with pytest.raises(ValueError, match="does not know: 'kitten'"):
        explain_prompt(strict, PROMPT, method="shapley", seeds=1, embedder="pixel", perturbation="replace:kitten")


def test_work_is_one_type_for_every_perturbation(adapter):
    from diffexplain.executors import InProcessExecutor, Work

    masks = np.array([[1, 1, 0, 1]], bool)
    for perturbation in (DropWords(), EmptyEmbedding(), ReplaceWords("small")):
        work = Work(PROMPT, masks, (3,), perturbation)
        (_, images), = InProcessExecutor().run(adapter, [work])
        np.testing.assert_array_equal(images, perturbation.generate(adapter, PROMPT, masks, [3]))
    with pytest.raises(ValueError, match="one row per seed"):
        Work(PROMPT, masks, (1, 2))


# -- settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("changes,match", [
    (dict(method="magic"), "method must be one of"),
    (dict(budget=0), "budget must be >= 1"),
    (dict(seeds=0), "seeds must be >= 1"),
    (dict(seeds=[]), "seeds must not be empty"),
    (dict(seeds=[1, 1]), "seeds must be distinct"),
    (dict(embedder="vgg"), "embedder must be one of"),
    (dict(embedder="pixel", embedder_size=64), "embedder_size applies to the 'efficientnet' embedder"),
    (dict(similarity="dot"), "similarity must be one of"),
    (dict(perturbation="mask"), "perturbation must be one of"),
    (dict(reference="other"), "reference must be one of"),
])
def test_settings_are_validated_once_naming_the_field(changes, match):
    from diffexplain.explain.settings import ExplainSettings

    with pytest.raises(ValueError, match=match):
        ExplainSettings(**changes)


def test_settings_are_one_frozen_value_and_seed_is_the_first_image_seed():
    from diffexplain.explain.settings import ExplainSettings

    settings = ExplainSettings(seeds=3, seed=5, perturbation="replace:thing")
    assert settings.image_seeds == (5, 6, 7) and settings.perturbation == ReplaceWords("thing")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.method = "lime"  # type: ignore[misc]
    assert settings.replace(seed=0).image_seeds == (0, 1, 2)
    assert settings.replace(method="lime", budget=None).budget is None
    assert ExplainSettings().describe()["perturbation"] == "drop"


def test_the_command_line_reads_its_choices_and_defaults_from_the_library():
    from diffexplain.cli.main import cli
    from diffexplain.embed import EMBEDDERS, SIMILARITIES
    from diffexplain.explain.methods import DEFAULT_METHOD, METHODS

    for name in ("explain", "edit", "audit"):
        options = {o.name: o for o in cli.commands[name].params}
        assert list(options["method"].type.choices) == list(METHODS)
        assert options["method"].default == DEFAULT_METHOD
        assert list(options["embedder"].type.choices) == list(EMBEDDERS)
        assert list(options["similarity"].type.choices) == list(SIMILARITIES)
        assert "sampler_seed" in options and "image seed" in options["seed"].help
        for family in FAMILIES.values():
            assert f"{family.title} {family.guidance_scale:g}" in options["guidance"].help


# -- results as plain data ---------------------------------------------------------------------
def test_explanations_cohorts_give_the_audit_summary():
    from diffexplain.explain.audit import summarise
    from diffexplain.types import Explanation, Explanations

    def explanation(words, values):
        return Explanation(method="shapley", features=tuple(words), values=np.array(values), base_value=0,
                           full_value=float(sum(values)))

    batch = Explanations((explanation(["a", "doctor"], [1, 3]), explanation(["a", "nurse"], [1, 1]),
                          explanation(["A", "doctor"], [0, 2])), ("d", "n", "d"))
    cohorts = batch.cohorts()
    assert list(cohorts) == ["d", "n"] and len(cohorts["d"]) == 2
    assert {s.word: (round(s.mean, 6), s.count) for s in cohorts["d"].word_stats()} == \
        {"a": (0.125, 2), "doctor": (0.875, 2)}
    assert isinstance(batch[1:], Explanations) and batch[0].features == ("a", "doctor")
    summary = summarise(batch)
    assert summary.groups == ("d", "n") and summary.n_prompts == 3
    assert dict(summary.differences)["a"] == pytest.approx(0.125 - 0.5)
    assert list(batch.cohorts(by=lambda e: e.features[1]).keys()) == ["doctor", "nurse"]


def test_the_report_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    import matplotlib

    from diffexplain.report.html import explanation_report
    from diffexplain.types import Explanation

    matplotlib.use("svg")
    try:
        explanation_report(Explanation(method="shapley", features=("a", "b"), values=np.array([1.0, -1.0]),
                                       base_value=0.0, full_value=0.0), tmp_path / "r.html")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use("agg")


def test_an_adapter_recorder_stops_observing_after_an_exception(adapter):
    from diffexplain.attention import AttentionRecorder

    recorder = AttentionRecorder(adapter)
    with pytest.raises(RuntimeError, match="stop"):
        with recorder:
            assert adapter.observers == [recorder]
            raise RuntimeError("stop")
    assert adapter.observers == [] and not adapter.pipe.unet._forward_pre_hooks
    with AttentionRecorder(adapter) as recorder:
        adapter.generate([PROMPT], [0])
    assert recorder.prompts == [PROMPT] and recorder.maps().words == ((tuple(PROMPT.split())),)
    with AttentionRecorder(adapter.pipe.unet) as bare:
        adapter.generate([PROMPT], [0])
    with pytest.raises(ValueError, match="bare denoiser .* AttentionMaps.from_recorder"):
        bare.maps([PROMPT])
