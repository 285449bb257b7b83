"""This study's own versions of the paper's Fig. 2 (workflow) and Fig. 3 (multi-branch ResNet-18).

Both figures draw what this code does, not what the paper drew:

- `workflow_figure` is the pipeline from a particle source to the book, each box naming the
  module that does the stage; image and map sizes, feature and target counts come from the
  configuration and the dataset schema, not from the paper.
- `architecture_figure` is derived from a model actually built by
  `analysis_lib.models.cnn.build_model`: `architecture_summary` pushes a zero tensor through each
  branch on the CPU and records, with forward hooks on the branch's own layers, the feature-map
  size after the stem and after each residual stage, and counts the parameters. Change the stem,
  the input sizes or the head in the configuration and the figure follows.

Plain matplotlib (patches and annotations); no graphviz.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

MONO = "monospace"
DEFAULT_INPUTS: dict[str, int] = {"image_r": 300, "vel_map": 48, "sigma_map": 48}
DEFAULT_TARGETS: list[str] = ["log_mstar"]
INPUT_LABELS = {
    "image_r": "r-band image",
    "image_g": "g-band image",
    "colour_gr": "g-r colour map",
    "vel_map": "mean LOS velocity map",
    "sigma_map": "LOS dispersion map",
}
STAGES = ("layer1", "layer2", "layer3", "layer4")

# Colours per kind of stage (colour-blind-safe pastel pairs: face, edge).
COLOURS = {
    "source": ("#dbe9f6", "#2b6a9f"),
    "data": ("#e4f2e1", "#3c7d3a"),
    "model": ("#fbe6d3", "#b35806"),
    "output": ("#ece3f3", "#6a3d9a"),
    "neutral": ("#f2f2f2", "#555555"),
}


# =========================================================================== drawing helpers


def _box(ax, x: float, y: float, w: float, h: float, kind: str = "neutral",
         lw: float = 1.2, pad: float = 0.02) -> FancyBboxPatch:
    """A rounded box with its lower-left corner at (x, y) in data coordinates."""
    face, edge = COLOURS[kind]
    patch = FancyBboxPatch((x + pad, y + pad), w - 2 * pad, h - 2 * pad,
                           boxstyle=f"round,pad={pad},rounding_size={min(0.12, h / 4)}",
                           facecolor=face, edgecolor=edge, linewidth=lw, zorder=1)
    ax.add_patch(patch)
    return patch


def _labelled_box(ax, x: float, y: float, w: float, h: float, title: str,
                  module: str | None = None, detail: str | None = None, kind: str = "neutral",
                  title_size: float = 10.5, detail_size: float = 8.0,
                  module_size: float = 7.5) -> FancyBboxPatch:
    """A box with a bold title at the top, detail lines in the middle, the module at the bottom."""
    patch = _box(ax, x, y, w, h, kind)
    cx = x + w / 2
    ax.text(cx, y + h - 0.12, title, ha="center", va="top", fontsize=title_size,
            fontweight="bold", zorder=3)
    if module:
        ax.text(cx, y + 0.1, module, ha="center", va="bottom", fontsize=module_size,
                family=MONO, color="#333333", zorder=3)
    if detail:
        ax.text(cx, y + h / 2 - (0.02 if module else 0.1), detail, ha="center", va="center",
                fontsize=detail_size, linespacing=1.25, color="#222222", zorder=3)
    return patch


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], colour: str = "#444444",
           connection: str = "arc3", lw: float = 1.4) -> FancyArrowPatch:
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, linewidth=lw,
                            color=colour, connectionstyle=connection, zorder=2,
                            shrinkA=1, shrinkB=1)
    ax.add_patch(arrow)
    return arrow


def _canvas(width_in: float, height_in: float, xlim: float, ylim: float):
    fig = plt.figure(figsize=(width_in, height_in))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, xlim)
    ax.set_ylim(0, ylim)
    ax.set_axis_off()
    return fig, ax


# =========================================================================== Fig. 2: workflow


def _observe_numbers(cfg: Mapping | None) -> tuple[list[int], int]:
    if cfg is None:
        from analysis_lib.config import load_config

        cfg = load_config("paper")
    obs = cfg["observe"]
    return [int(s) for s in obs["image_sizes"]], int(obs["map_size"])


def workflow_figure(cfg: Mapping | None = None) -> Figure:
    """The pipeline of this study as boxes and arrows (this study's version of the paper's Fig. 2).

    `cfg` (a resolved configuration, default the 'paper' profile) supplies the image and map
    sizes written in the observation box; the feature and target counts come from the dataset
    schema (analysis_lib.dataset.FEATURES, TARGETS).
    """
    from analysis_lib.dataset import FEATURES, TARGETS

    image_sizes, map_size = _observe_numbers(cfg)
    sizes = "/".join(str(s) for s in image_sizes)
    fig, ax = _canvas(11.0, 6.6, 11.0, 6.6)

    # ---- top row, left to right: sources -> particles -> observations -> dataset
    top_y, top_h = 4.0, 2.1
    src_h = 0.98
    _labelled_box(ax, 0.15, top_y + top_h - src_h, 2.3, src_h, "Mock universe",
                  "analysis_lib.sources.mock", "particle galaxies from\npublished z~0 relations",
                  kind="source", detail_size=7.6)
    _labelled_box(ax, 0.15, top_y, 2.3, src_h, "IllustrisTNG", "analysis_lib.sources.tng",
                  "cutouts | web API | local copy", kind="source", detail_size=7.6)
    ax.text(1.3, top_y + top_h / 2, "or", ha="center", va="center", fontsize=8, style="italic",
            color="#555555")
    side_y, side_h = top_y + 0.25, top_h - 0.5
    mid = side_y + side_h / 2
    _labelled_box(ax, 2.9, side_y, 1.75, side_h, "Particles", "analysis_lib.particles",
                  "Galaxy:\nstars, gas, DM\n(kpc, km/s, Msun)", kind="data", detail_size=7.8)
    names = list(FEATURES)
    half = (len(names) + 1) // 2
    obs_detail = (f"dust-attenuated r, g SPH images ({sizes} px)\n"
                  f"{map_size}x{map_size} mean-velocity & dispersion maps\n"
                  f"{len(TARGETS)} target columns (masses, M*/L, f_DM, ...)\n"
                  f"{len(FEATURES)} Table-1 features: {', '.join(names[:half])},\n"
                  f"{', '.join(names[half:])}")
    _labelled_box(ax, 5.1, top_y, 3.45, top_h, "Mock observations", "analysis_lib.observe",
                  obs_detail, kind="data", detail_size=7.5)
    _labelled_box(ax, 9.0, side_y, 1.85, side_h, "HDF5 dataset", "analysis_lib.dataset",
                  "one row per\n(galaxy, projection);\nx, y, z lines of sight", kind="data",
                  detail_size=7.8)
    _arrow(ax, (2.45, top_y + top_h - src_h / 2), (2.9, mid + 0.25))
    _arrow(ax, (2.45, top_y + src_h / 2), (2.9, mid - 0.25))
    _arrow(ax, (4.65, mid), (5.1, mid))
    _arrow(ax, (8.55, mid), (9.0, mid))

    # ---- bottom row, right to left: split -> models -> results store -> book
    models = [
        ("Multi-branch ResNet-18", "analysis_lib.models.cnn", "CNN on the images and maps (torch)"),
        ("LightGBM", "analysis_lib.models.gbdt", "gradient-boosted trees on the Table-1 features"),
        ("JAM dynamical models", "analysis_lib.models.jam",
         "MGE of the r image + NFW halo, fit to the maps"),
        ("Power-law baseline", "analysis_lib.models.baselines",
         "M* ~ L^b fitted on the CNN training rows"),
    ]
    mx, mw, mh, gap = 4.95, 3.6, 0.74, 0.08
    m_top = 3.62
    m_bottom = m_top - len(models) * mh - (len(models) - 1) * gap
    ax.text(mx + mw / 2, m_top + 0.03, "models (each writes runs to the store)", ha="center",
            va="bottom", fontsize=8, style="italic", color="#555555")
    _labelled_box(ax, 9.0, m_bottom, 1.85, m_top - m_bottom, "Split by galaxy",
                  "analysis_lib.dataset.splits",
                  "train / val / test\n(CNN) or train / test\n(GBDT);"
                  "\nall projections of\na galaxy together", kind="data", detail_size=7.6)
    _arrow(ax, (9.925, side_y), (9.925, m_top))
    _labelled_box(ax, 2.45, m_bottom, 2.05, m_top - m_bottom, "Results store",
                  "analysis_lib.results", "data/results/<profile>/\n<kind>/<name>/\n\n"
                  "config.json, meta.json,\nmetrics.json,\npredictions.csv,\nhistory.csv",
                  kind="output", detail_size=7.6)
    for i, (title, module, detail) in enumerate(models):
        y = m_top - (i + 1) * mh - i * gap
        _box(ax, mx, y, mw, mh, "model")
        ax.text(mx + 0.14, y + mh - 0.08, title, ha="left", va="top", fontsize=9.5,
                fontweight="bold", zorder=3)
        ax.text(mx + 0.14, y + mh * 0.47, detail, ha="left", va="center", fontsize=7.4,
                color="#222222", zorder=3, style="italic")
        ax.text(mx + 0.14, y + 0.07, module, ha="left", va="bottom", fontsize=7.5, family=MONO,
                color="#333333", zorder=3)
        _arrow(ax, (9.0, y + mh / 2), (mx + mw, y + mh / 2), colour="#8c510a", lw=1.1)
        _arrow(ax, (mx, y + mh / 2), (4.5, y + mh / 2), colour="#8c510a", lw=1.1)
    b_mid = (m_top + m_bottom) / 2
    _labelled_box(ax, 0.15, b_mid - 0.95, 1.9, 1.9, "Book", "analysis_lib.presentation.publish",
                  "papermill runs the\nnotebooks, then\nJupyter Book builds\nthe HTML "
                  "(reads\nthe store: no\nretraining)", kind="output", detail_size=7.6)
    _arrow(ax, (2.45, b_mid), (2.05, b_mid))

    ax.text(0.15, 6.5, "Workflow of this study (cf. the paper's Fig. 2)", ha="left", va="top",
            fontsize=13, fontweight="bold")
    ax.text(0.15, 0.3, "Profiles smoke / quick / paper (analysis_lib/profiles.yaml) set sizes and "
            "counts; every run records its resolved configuration in the store.",
            ha="left", va="top", fontsize=8, color="#444444")
    return fig


# =========================================================================== Fig. 3: architecture


def _default_cnn_cfg() -> dict:
    from analysis_lib.config import load_config

    return dict(load_config("paper")["cnn"])


def _stem_name(conv1) -> str:
    """'small' or 'imagenet', read from the branch's first convolution (as resnet18_backbone)."""
    return "small" if tuple(conv1.stride) == (1, 1) else "imagenet"


def _conv_text(module) -> str:
    k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
    s = module.stride if isinstance(module.stride, int) else module.stride[0]
    return f"{k}x{k}/{s}"


def _head_text(head) -> str:
    from torch import nn

    parts = []
    for layer in head:
        if isinstance(layer, nn.Linear):
            parts.append(f"Linear {layer.in_features} -> {layer.out_features}")
        else:
            parts.append(type(layer).__name__)
    return ", ".join(parts)


def architecture_summary(model=None, *, input_sizes: Mapping[str, int] | None = None,
                         targets: Sequence[str] | None = None,
                         cnn_cfg: Mapping | None = None) -> pd.DataFrame:
    """One row per branch of a built multi-branch ResNet-18, from a forward pass on the CPU.

    Give a `model` (a MultiBranchResNet) or the arguments of `build_model` (defaults: r image
    300 px plus both 48-px kinematic maps, target log_mstar, the 'paper' profile's cnn section).
    Columns: branch, input, size, stem, conv1 and maxpool (kernel/stride), after_conv1,
    after_stem (after the max-pool), stage1..stage4 (feature-map side in pixels), channels,
    blocks and strides (per stage), features (pooled), parameters. `attrs` holds head (text),
    head_parameters, total_parameters (= count_parameters(model)), n_features (concatenated),
    targets, order (the concatenation order).
    The model is put back in the training mode it had.
    """
    import torch

    from analysis_lib.models.cnn import build_model, count_parameters

    if model is None:
        targets = list(targets or DEFAULT_TARGETS)
        model = build_model(dict(input_sizes or DEFAULT_INPUTS), targets,
                            dict(cnn_cfg) if cnn_cfg is not None else _default_cnn_cfg())
    n_out = [m for m in model.head if hasattr(m, "out_features")][-1].out_features
    names = list(targets) if targets is not None else [f"output {i}" for i in range(n_out)]
    if len(names) != n_out:
        raise ValueError(f"{len(names)} target names for a model with {n_out} outputs")

    rows = []
    for name in model.input_names:
        branch = model.branches[name]
        size = int(model.input_sizes[name])
        shapes: dict[str, tuple[int, ...]] = {}
        hooks = [getattr(branch, part).register_forward_hook(
            lambda _m, _i, out, part=part, shapes=shapes: shapes.__setitem__(
                part, tuple(out.shape)))
            for part in ("conv1", "maxpool", *STAGES)]
        was_training = branch.training
        try:
            branch.eval()
            with torch.no_grad():
                pooled = branch(torch.zeros(1, branch.conv1.in_channels, size, size))
        finally:
            branch.train(was_training)
            for h in hooks:
                h.remove()
        rows.append({
            "branch": name,
            "input": INPUT_LABELS.get(name, name),
            "size": size,
            "in_channels": int(branch.conv1.in_channels),  # maps: value + mask
            "stem": _stem_name(branch.conv1),
            "conv1": _conv_text(branch.conv1),
            "maxpool": _conv_text(branch.maxpool),
            "after_conv1": shapes["conv1"][-1],
            "after_stem": shapes["maxpool"][-1],
            **{f"stage{i + 1}": shapes[part][-1] for i, part in enumerate(STAGES)},
            "channels": tuple(shapes[part][1] for part in STAGES),
            "blocks": tuple(len(getattr(branch, part)) for part in STAGES),
            "strides": tuple(int(getattr(branch, part)[0].conv1.stride[0]) for part in STAGES),
            "features": int(pooled.shape[-1]),
            "parameters": count_parameters(branch),
        })
    frame = pd.DataFrame(rows)
    head_params = count_parameters(model.head)
    frame.attrs.update({
        "head": _head_text(model.head),
        "head_parameters": head_params,
        "total_parameters": count_parameters(model),
        "n_features": int(frame["features"].sum()),
        "targets": names,
        "order": list(model.input_names),
    })
    return frame


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,}"


_ARCH_BOX_H, _ARCH_STEP = 0.62, 0.86  # block height and vertical pitch of a branch column, inches


def _architecture_title(ax, width: float, height: float, cfg: Mapping) -> None:
    """Title and the build_model options line at the top of the architecture figure.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The canvas (data units = inches).
    width, height : float
        Canvas size, inches.
    cfg : Mapping
        The cnn settings the model was built with (stem, head_hidden).
    """
    ax.text(width / 2, height - 0.15, "Multi-branch ResNet-18 as implemented in this study",
            ha="center", va="top", fontsize=14, fontweight="bold")
    ax.text(width / 2, height - 0.55,
            f"built by analysis_lib.models.cnn.build_model  (stem='{cfg.get('stem', 'imagenet')}',"
            f" head_hidden={int(cfg.get('head_hidden', 0))});  feature-map sizes from a forward "
            "pass", ha="center", va="top", fontsize=8.5, family=MONO, color="#333333")


def _branch_input_and_stem(ax, row, x: float, col_w: float, top: float) -> float:
    """Input box and stem box of one branch column; returns the stem box's bottom y.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The canvas.
    row : namedtuple
        The branch's row of `architecture_summary`.
    x : float
        Left edge of the column.
    col_w : float
        Column width.
    top : float
        Top of the input box.

    Returns
    -------
    float
        Bottom y of the stem box, where the stages start.
    """
    box_h, step = _ARCH_BOX_H, _ARCH_STEP
    cx = x + col_w / 2
    y = top - box_h
    _box(ax, x, y, col_w, box_h, "source")
    ax.text(cx, y + box_h - 0.1, f"{row.input}", ha="center", va="top", fontsize=9.5,
            fontweight="bold", zorder=3)
    ax.text(cx, y + 0.09, f"{row.branch}: {row.size}x{row.size}x{row.in_channels}", ha="center",
            va="bottom", fontsize=8, family=MONO, zorder=3)

    stem_h = 0.82
    y_stem = y - (step - box_h) - stem_h
    _arrow(ax, (cx, y), (cx, y_stem + stem_h))
    _box(ax, x, y_stem, col_w, stem_h, "neutral")
    ax.text(cx, y_stem + stem_h - 0.1, f"stem: {row.stem}", ha="center", va="top",
            fontsize=9, fontweight="bold", zorder=3)
    ax.text(cx, y_stem + 0.09,
            f"conv {row.conv1}, 64 -> {row.after_conv1}x{row.after_conv1}\n"
            f"max-pool {row.maxpool} -> {row.after_stem}x{row.after_stem}",
            ha="center", va="bottom", fontsize=7.8, family=MONO, linespacing=1.2, zorder=3)
    return y_stem


def _branch_stages_and_pool(ax, row, x: float, col_w: float, y_prev: float
                            ) -> tuple[float, float]:
    """The four ResNet stages and the global pool of one branch column, below `y_prev`.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The canvas.
    row : namedtuple
        The branch's row of `architecture_summary` (blocks, strides, channels, stageN).
    x : float
        Left edge of the column.
    col_w : float
        Column width.
    y_prev : float
        Bottom y of the stem box.

    Returns
    -------
    tuple
        (cx, y): the column's centre and the y where its arrow to the concatenation starts.
    """
    box_h, step = _ARCH_BOX_H, _ARCH_STEP
    cx = x + col_w / 2
    for k in range(4):
        side = getattr(row, f"stage{k + 1}")
        y_k = y_prev - (step - box_h) - box_h
        _arrow(ax, (cx, y_prev), (cx, y_k + box_h))
        _box(ax, x, y_k, col_w, box_h, "model")
        ax.text(cx, y_k + box_h - 0.1,
                f"stage {k + 1}: {row.blocks[k]} basic blocks, stride {row.strides[k]}",
                ha="center", va="top",
                fontsize=8.8, zorder=3)
        ax.text(cx, y_k + 0.09, f"-> {side}x{side}x{row.channels[k]}", ha="center",
                va="bottom", fontsize=8, family=MONO, zorder=3)
        y_prev = y_k
    y_pool = y_prev - (step - box_h) - box_h
    _arrow(ax, (cx, y_prev), (cx, y_pool + box_h))
    _box(ax, x, y_pool, col_w, box_h, "data")
    ax.text(cx, y_pool + box_h - 0.1, "global average pool", ha="center", va="top",
            fontsize=8.8, zorder=3)
    ax.text(cx, y_pool + 0.09, f"-> {row.features} features", ha="center", va="bottom",
            fontsize=8, family=MONO, zorder=3)
    ax.text(cx, y_pool - 0.08, f"{_millions(row.parameters)} parameters", ha="center",
            va="top", fontsize=8.2, style="italic", color="#444444")
    return cx, y_pool - 0.42


def _concatenation_box(ax, bottoms: list[tuple[float, float]], span_x0: float, span_w: float,
                       width: float, summary: pd.DataFrame) -> float:
    """Arrows from every branch into the concatenation box; returns the box's bottom y.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The canvas.
    bottoms : list of tuple
        (cx, y) where each branch's arrow starts (`_branch_stages_and_pool`).
    span_x0, span_w : float
        Left edge and width spanned by the branch columns.
    width : float
        Canvas width.
    summary : pandas.DataFrame
        `architecture_summary` (attrs: n_features, order).

    Returns
    -------
    float
        Bottom y of the concatenation box.
    """
    att = summary.attrs
    cat_h = _ARCH_BOX_H
    y_cat = bottoms[0][1] - 0.35 - cat_h
    for cx, yb in bottoms:
        _arrow(ax, (cx, yb), (cx, y_cat + cat_h))
    _box(ax, span_x0, y_cat, span_w, cat_h, "neutral")
    ax.text(width / 2, y_cat + cat_h - 0.1,
            f"concatenate: {len(summary)} x {summary['features'].iloc[0]} = "
            f"{att['n_features']} features",
            ha="center", va="top", fontsize=9.5, fontweight="bold", zorder=3)
    ax.text(width / 2, y_cat + 0.09, "order: " + " | ".join(att["order"]) + "  (sorted names)",
            ha="center", va="bottom", fontsize=7.8, family=MONO, zorder=3)
    return y_cat


def _head_box(ax, width: float, span_w: float, y_cat: float, att: Mapping) -> float:
    """The fully connected head below the concatenation; returns the head box's bottom y.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The canvas.
    width, span_w : float
        Canvas width and the branch columns' span.
    y_cat : float
        Bottom y of the concatenation box.
    att : Mapping
        `architecture_summary` attrs (head, head_parameters).

    Returns
    -------
    float
        Bottom y of the head box.
    """
    cat_h = _ARCH_BOX_H
    head_w = min(span_w, 6.4)
    y_head = y_cat - 0.3 - cat_h
    _arrow(ax, (width / 2, y_cat), (width / 2, y_head + cat_h))
    _box(ax, (width - head_w) / 2, y_head, head_w, cat_h, "model")
    ax.text(width / 2, y_head + cat_h - 0.1, "fully connected head", ha="center", va="top",
            fontsize=9.5, fontweight="bold", zorder=3)
    ax.text(width / 2, y_head + 0.09,
            f"{att['head']}  ({att['head_parameters']:,} parameters)", ha="center",
            va="bottom", fontsize=7.8, family=MONO, zorder=3)
    return y_head


def _output_boxes(ax, width: float, span_w: float, y_head: float, att: Mapping,
                  n_branches: int) -> None:
    """One box per target under the head, and the parameter total as the caption line.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The canvas.
    width, span_w : float
        Canvas width and the branch columns' span.
    y_head : float
        Bottom y of the head box.
    att : Mapping
        `architecture_summary` attrs (targets, total_parameters).
    n_branches : int
        Number of branches (for the caption).
    """
    out_names = att["targets"]
    n_t = len(out_names)
    t_w = min(2.2, (span_w - 0.2 * (n_t - 1)) / n_t)
    t_x0 = (width - (n_t * t_w + (n_t - 1) * 0.2)) / 2
    y_out = y_head - 0.3 - 0.45
    for i, t in enumerate(out_names):
        tx = t_x0 + i * (t_w + 0.2)
        _arrow(ax, (width / 2, y_head), (tx + t_w / 2, y_out + 0.45))
        _box(ax, tx, y_out, t_w, 0.45, "output")
        ax.text(tx + t_w / 2, y_out + 0.225, t, ha="center", va="center", fontsize=8.5,
                family=MONO, zorder=3)
    n = n_branches
    ax.text(width / 2, y_out - 0.12,
            f"total: {att['total_parameters']:,} parameters "
            f"({n} branch{'es' if n > 1 else ''} + head); outputs are standardised targets "
            "(log10), inverted after prediction", ha="center", va="top", fontsize=8.5,
            color="#333333")


def architecture_figure(input_sizes: dict[str, int] | None = None,
                        targets: list[str] | None = None,
                        cnn_cfg: dict | None = None) -> Figure:
    """The multi-branch ResNet-18 as build_model builds it (this study's version of Fig. 3).

    Defaults: branches image_r (300 px), vel_map and sigma_map (48 px), target log_mstar, the
    'paper' profile's cnn section (stem, head_hidden). Every size and count is read from the
    built model by `architecture_summary`, so the figure cannot drift from the code.

    Parameters
    ----------
    input_sizes : dict, optional
        Branch name -> input size in pixels.
    targets : list of str, optional
        Target names (one output each).
    cnn_cfg : dict, optional
        The cnn settings (stem, head_hidden, ...).

    Returns
    -------
    matplotlib.figure.Figure
        One column per branch (input, stem, four stages, pool), then the concatenation, the
        head and the outputs.
    """
    from analysis_lib.models.cnn import build_model

    sizes = dict(input_sizes or DEFAULT_INPUTS)
    names = list(targets or DEFAULT_TARGETS)
    cfg = dict(cnn_cfg) if cnn_cfg is not None else _default_cnn_cfg()
    model = build_model(sizes, names, cfg)
    summary = architecture_summary(model, targets=names)
    n = len(summary)

    col_w, gap_x = 3.05, 0.3
    width = max(10.0, n * col_w + (n - 1) * gap_x + 0.6)
    height = 10.45
    fig, ax = _canvas(width, height, width, height)
    x0 = (width - (n * col_w + (n - 1) * gap_x)) / 2
    _architecture_title(ax, width, height, cfg)

    bottoms = []
    for j, row in enumerate(summary.itertuples(index=False)):
        x = x0 + j * (col_w + gap_x)
        y_stem = _branch_input_and_stem(ax, row, x, col_w, height - 1.05)
        bottoms.append(_branch_stages_and_pool(ax, row, x, col_w, y_stem))

    span_w = n * col_w + (n - 1) * gap_x
    y_cat = _concatenation_box(ax, bottoms, x0, span_w, width, summary)
    y_head = _head_box(ax, width, span_w, y_cat, summary.attrs)
    _output_boxes(ax, width, span_w, y_head, summary.attrs, n)
    return fig


def experiment_architecture(cfg: Mapping, dataset, experiment: str) -> Figure:
    """The architecture of one named CNN experiment as this profile trains it on `dataset`.

    `experiment` is a name of experiments_cnn.yaml (the notebook's parameter says which).

    Input sizes are those the training resolves (the profile's image-size cap, the dataset's map
    size), so the figure shows the network the book's numbers came from.
    """
    from analysis_lib.models.cnn_data import resolve_inputs
    from analysis_lib.models.experiments import select_experiments

    exp = select_experiments("cnn", [experiment])[0]
    specs = resolve_inputs(dataset, exp, int(cfg["cnn"]["image_size"]))
    return architecture_figure({s.name: s.size for s in specs}, list(exp["targets"]),
                               dict(cfg["cnn"]))


def save_examples(out_dir: str = "/tmp/diagrams") -> dict[str, str]:
    """Write workflow.png and architecture.png (default arguments) to out_dir; returns paths."""
    from pathlib import Path

    from analysis_lib.io import atomic_write

    out = Path(out_dir)
    paths = {}
    for name, make in (("workflow", workflow_figure), ("architecture", architecture_figure)):
        fig = make()
        path = out / f"{name}.png"
        atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, dpi=110, format="png"))
        plt.close(fig)
        paths[name] = str(path)
    return paths
