"""The workflow and architecture diagrams: sizes from a real forward pass, labels, no overlaps."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from analysis_lib.models.cnn import FEATURES_PER_BRANCH, build_model, count_parameters  # noqa: E402
from analysis_lib.presentation import diagrams  # noqa: E402

STAGES = ("layer1", "layer2", "layer3", "layer4")
# Independent expectations: (after conv1, after max-pool, stage 1..4) for each (size, stem).
EXPECTED = {
    (300, "imagenet"): (150, 75, 75, 38, 19, 10),
    (48, "imagenet"): (24, 12, 12, 6, 3, 2),
    (48, "small"): (48, 24, 24, 12, 6, 3),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def imagenet_model():
    torch.manual_seed(0)
    return build_model({"image_r": 300, "vel_map": 48}, ["log_mstar", "log_mtot"],
                       {"stem": "imagenet", "head_hidden": 0})


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_model({"sigma_map": 48}, ["log_mstar"], {"stem": "small", "head_hidden": 16})


def manual_sizes(branch, size: int) -> tuple[int, ...]:
    """Spatial sides after conv1, max-pool and each stage, by calling the layers one by one."""
    branch.eval()
    out = []
    with torch.no_grad():
        x = torch.zeros(2, branch.conv1.in_channels, size, size)
        x = branch.conv1(x)
        out.append(x.shape[-1])
        x = branch.maxpool(branch.relu(branch.bn1(x)))
        out.append(x.shape[-1])
        for part in STAGES:
            x = getattr(branch, part)(x)
            out.append(x.shape[-1])
    return tuple(out)


def summary_sizes(row) -> tuple[int, ...]:
    return (row["after_conv1"], row["after_stem"], *(row[f"stage{k}"] for k in range(1, 5)))


@pytest.fixture(scope="module")
def summaries(imagenet_model, small_model):
    return {"imagenet": diagrams.architecture_summary(imagenet_model),
            "small": diagrams.architecture_summary(small_model)}


def test_summary_sizes_match_forward_pass(imagenet_model, small_model, summaries):
    cases = [(imagenet_model, "imagenet", "image_r", 300, "imagenet"),
             (imagenet_model, "imagenet", "vel_map", 48, "imagenet"),
             (small_model, "small", "sigma_map", 48, "small")]
    for model, key, name, size, stem in cases:
        frame = summaries[key].set_index("branch")
        row = frame.loc[name]
        assert row["size"] == size
        assert row["stem"] == stem
        got = summary_sizes(row)
        assert got == manual_sizes(model.branches[name], size)
        assert got == EXPECTED[(size, stem)]
        assert row["features"] == FEATURES_PER_BRANCH
        assert row["channels"] == (64, 128, 256, 512)
        assert row["blocks"] == (2, 2, 2, 2)
        assert row["strides"] == (1, 2, 2, 2)


def test_summary_leaves_training_mode(small_model):
    small_model.train()
    diagrams.architecture_summary(small_model)
    assert all(m.training for m in small_model.modules())
    assert not any(m._forward_hooks for m in small_model.modules())


def test_parameter_counts_add_up(imagenet_model, small_model, summaries):
    for model, key in ((imagenet_model, "imagenet"), (small_model, "small")):
        frame = summaries[key]
        assert frame.attrs["total_parameters"] == count_parameters(model)
        assert (frame["parameters"].sum() + frame.attrs["head_parameters"]
                == count_parameters(model))
        for name in model.input_names:
            row = frame.set_index("branch").loc[name]
            assert row["parameters"] == count_parameters(model.branches[name])
    # the small stem's 3x3 first convolution has fewer weights than the 7x7 one
    big = summaries["imagenet"].set_index("branch")
    small = summaries["small"].set_index("branch")
    # (both maps have 2 input channels: value and mask)
    assert (big.loc["vel_map", "parameters"] - small.loc["sigma_map", "parameters"]
            == 2 * 64 * (49 - 9))
    assert small.attrs["head"] == "Linear 512 -> 16, ReLU, Linear 16 -> 1"
    assert big.attrs["order"] == ["image_r", "vel_map"]
    assert big.attrs["n_features"] == 2 * FEATURES_PER_BRANCH


def test_summary_target_names_checked(small_model):
    assert diagrams.architecture_summary(small_model).attrs["targets"] == ["output 0"]
    with pytest.raises(ValueError, match="2 target names"):
        diagrams.architecture_summary(small_model, targets=["a", "b"])


def figure_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def layout_problems(fig) -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs of texts whose rendered boxes intersect, texts reaching outside the figure)."""
    renderer = fig.canvas.get_renderer()
    items = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_text() and t.get_visible()]
    pairs = [(a, b) for (a, ba), (b, bb) in itertools.combinations(items, 2) if ba.overlaps(bb)]
    box = fig.bbox
    outside = [a for a, e in items
               if e.x0 < box.x0 or e.x1 > box.x1 or e.y0 < box.y0 or e.y1 > box.y1]
    return pairs, outside


def test_layout_check_can_fail():
    fig = plt.figure(figsize=(2, 1))
    try:
        fig.text(0.1, 0.5, "one label")
        fig.text(0.15, 0.5, "another label")
        fig.text(0.9, 0.5, "off the edge")
        pairs, outside = layout_problems(fig)
        assert pairs == [("one label", "another label")]
        assert outside == ["off the edge"]
    finally:
        plt.close(fig)


def test_workflow_figure_labels_and_layout():
    fig = diagrams.workflow_figure()
    try:
        texts = "\n".join(figure_texts(fig))
        labels = set(figure_texts(fig))
        for module in ("analysis_lib.sources.mock", "analysis_lib.sources.tng",
                       "analysis_lib.particles", "analysis_lib.observe", "analysis_lib.dataset",
                       "analysis_lib.dataset.splits", "analysis_lib.models.cnn",
                       "analysis_lib.models.gbdt", "analysis_lib.models.jam",
                       "analysis_lib.models.baselines", "analysis_lib.results",
                       "analysis_lib.presentation.publish"):
            assert module in labels, module
        assert "300/150/60 px" in texts and "48x48" in texts
        assert "data/results/<profile>/" in texts
        assert layout_problems(fig) == ([], [])
    finally:
        plt.close(fig)


def test_workflow_figure_follows_config():
    cfg = {"observe": {"image_sizes": [60, 30], "map_size": 16}}
    fig = diagrams.workflow_figure(cfg)
    try:
        texts = "\n".join(figure_texts(fig))
        assert "60/30 px" in texts and "16x16" in texts
        assert "300/150/60" not in texts
    finally:
        plt.close(fig)


def test_architecture_figure_defaults(imagenet_model):
    fig = diagrams.architecture_figure()
    try:
        texts = "\n".join(figure_texts(fig))
        for label in ("image_r: 300x300x1", "vel_map: 48x48x2", "sigma_map: 48x48x2",
                      "log_mstar", "stem: imagenet", "-> 10x10x512", "-> 2x2x512",
                      "3 x 512 = 1536", "Linear 1536 -> 1", "this study"):
            assert label in texts, label
        # 3 imagenet branches (same count whatever the input size; the two maps have a second,
        # mask, channel) + Linear(1536 -> 1)
        total = (count_parameters(imagenet_model.branches["image_r"])
                 + 2 * count_parameters(imagenet_model.branches["vel_map"]) + 1536 + 1)
        assert f"total: {total:,} parameters" in texts
        assert layout_problems(fig) == ([], [])
    finally:
        plt.close(fig)


def test_architecture_figure_options():
    fig = diagrams.architecture_figure({"vel_map": 48, "image_g": 60},
                                       ["log_mstar", "log_mtot", "log_mdm"],
                                       {"stem": "auto", "head_hidden": 8})
    try:
        texts = "\n".join(figure_texts(fig))
        for label in ("stem: small", "conv 3x3/1, 64 -> 48x48", "-> 3x3x512", "-> 4x4x512",
                      "log_mstar", "log_mtot", "log_mdm", "Linear 1024 -> 8, ReLU, Linear 8 -> 3",
                      "image_g: 60x60x1"):
            assert label in texts, label
        assert "stem: imagenet" not in texts
        assert layout_problems(fig) == ([], [])
    finally:
        plt.close(fig)
