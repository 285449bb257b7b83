"""Figures for the book: presentation only, every axis labelled with its units.

Importing this module applies the book's matplotlib style
(analysis_lib/presentation/templates/book.mplstyle:
font sizes that stay legible when a multi-panel figure is shrunk to the page width), so every
notebook that draws gets it from its setup cell's `from analysis_lib import plots`.
"""

from __future__ import annotations

from importlib import resources

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis_lib.results import prediction_pairs

LABELS = {
    "log_mstar": r"$\log_{10} M_*(<R_{1/2})$ [M$_\odot$]",
    "log_mtot": r"$\log_{10} M_{\rm tot}(<R_{1/2})$ [M$_\odot$]",
    "log_mdm": r"$\log_{10} M_{\rm DM}(<R_{1/2})$ [M$_\odot$]",
    "log_mstar_proj": r"$\log_{10} M_{*,\rm proj}(<R_{1/2})$ [M$_\odot$]",
    "log_ml_r": r"$\log_{10} M_*/L_r$ [M$_\odot$/L$_\odot$]",
    "log_fdm": r"$\log_{10} f_{\rm DM}(<R_{1/2})$",
    "log_fstar": r"$\log_{10} f_*(<R_{1/2})$",
}


# The same labels as plain text (unicode, no TeX) for plotly figures and tables.
TEXT_LABELS = {
    "log_mstar": "log\u2081\u2080 M\u2605(<R\u00bd) [M\u2609]",
    "log_mtot": "log\u2081\u2080 M_tot(<R\u00bd) [M\u2609]",
    "log_mdm": "log\u2081\u2080 M_DM(<R\u00bd) [M\u2609]",
    "log_mstar_proj": "log\u2081\u2080 M\u2605,proj(<R\u00bd) [M\u2609]",
    "log_ml_r": "log\u2081\u2080 M\u2605/L_r [M\u2609/L\u2609]",
    "log_fdm": "log\u2081\u2080 f_DM(<R\u00bd)",
    "log_fstar": "log\u2081\u2080 f\u2605(<R\u00bd)",
}
BOOK_STYLE = "book.mplstyle"


def label(name: str) -> str:
    """The TeX axis label of a target (with units), or the name itself if unknown."""
    return LABELS.get(name, name)


def text_label(name: str) -> str:
    """The plain-text label of a target (with units) for plotly figures and tables."""
    return TEXT_LABELS.get(name, name)


def use_book_style() -> None:
    """Apply the book's matplotlib style (package data): why one place, see the module doc."""
    style = resources.files("analysis_lib.presentation").joinpath("templates", BOOK_STYLE)
    with resources.as_file(style) as path:
        plt.style.use(str(path))


use_book_style()


def galaxy_panels(images: dict[str, np.ndarray], fov_rhalf: float | None = None,
                  title: str = "", solar_g_r: float | None = None):
    """The paper's Fig. 1: r image, g-r colour, mean velocity and dispersion of one sample.

    The images are in solar luminosities, so -2.5 log(L_g / L_r) is the colour relative to the
    Sun's; `solar_g_r` (GalaxyDataset.solar_g_r) turns it into an AB colour. `fov_rhalf` is the
    field's half-width in R_half, the dataset's ``observe.fov_rhalf``
    (interactive.dataset_fov_rhalf); None: the project default of profiles.yaml.
    """
    if fov_rhalf is None:
        from analysis_lib.config import default_setting

        fov_rhalf = float(default_setting("observe.fov_rhalf"))
    size = next(k for k in images if k.startswith("image_r_"))
    n = size.split("_")[-1]
    r, g = images[f"image_r_{n}"], images[f"image_g_{n}"]
    mask = images.get("map_mask")
    ext = [-fov_rhalf, fov_rhalf, -fov_rhalf, fov_rhalf]
    # 2 x 2 rather than the paper's 1 x 4: at the book's page width four panels in a row leave
    # the colour-bar labels unreadable.
    fig, axes = plt.subplots(2, 2, figsize=(9, 7.4), constrained_layout=True)
    axes = axes.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.log10(np.where(r > 0, r, np.nan))
        gr = -2.5 * np.log10(np.where((r > 0) & (g > 0), g / r, np.nan))
    if solar_g_r is None:
        gr_label = r"$(g-r) - (g-r)_\odot$ [mag]"
    else:
        gr, gr_label = gr + solar_g_r, r"$g-r$ [AB mag]"
    panels = [
        (mu, "magma", r"$\log_{10} L_r$ [L$_\odot$ pixel$^{-1}$]", "r-band image"),
        (gr, "RdYlBu_r", gr_label, "g - r colour"),
    ]
    vel, sig = images["vel_map"], images["sigma_map"]
    if mask is not None:
        vel = np.where(mask, vel, np.nan)
        sig = np.where(mask, sig, np.nan)
    vmax = np.nanpercentile(np.abs(vel), 98) if np.isfinite(vel).any() else 1.0
    panels += [(vel, "RdBu_r", r"$V_{\rm los}$ [km s$^{-1}$]", "mean velocity"),
               (sig, "viridis", r"$\sigma_{\rm los}$ [km s$^{-1}$]", "velocity dispersion")]
    for ax, (arr, cmap, clabel, name) in zip(axes, panels, strict=True):
        kw = {"vmin": -vmax, "vmax": vmax} if name == "mean velocity" else {}
        im = ax.imshow(arr, origin="lower", extent=ext, cmap=cmap, **kw)
        bar = fig.colorbar(im, ax=ax, label=clabel, shrink=0.85)
        bar.ax.yaxis.get_major_formatter().set_useOffset(False)  # plain values on the bar
        ax.set_xlabel(r"$x / R_{1/2}$")
        ax.set_ylabel(r"$y / R_{1/2}$")
        ax.set_title(name)
    if title:
        fig.suptitle(title)
    return fig


def pred_vs_true(pred: np.ndarray, true: np.ndarray, name: str, ax=None, groups=None,
                 title: str = ""):
    """Predicted vs true with the one-to-one line and the bias/scatter in the legend."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.4), constrained_layout=True)
    pred, true = np.asarray(pred), np.asarray(true)
    d = pred - true
    size = float(np.clip(600 / max(len(pred), 1), 4, 30))  # visible for few points, light for many
    if groups is None:
        ax.scatter(true, pred, s=size, alpha=0.5, lw=0)
    else:
        for code, lab, c in ((0, "late type", "tab:blue"), (1, "early type", "tab:red")):
            sel = np.asarray(groups) == code
            ax.scatter(true[sel], pred[sel], s=size, alpha=0.6, lw=0, color=c, label=lab)
    lo, hi = np.nanmin([true.min(), pred.min()]), np.nanmax([true.max(), pred.max()])
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.text(0.04, 0.94, f"bias {d.mean():+.3f} dex\n$\\sigma$ {d.std(ddof=1):.3f} dex",
            transform=ax.transAxes, va="top")
    ax.set_xlabel("true " + label(name))
    ax.set_ylabel("predicted " + label(name))
    if groups is not None:
        ax.legend(loc="lower right", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def loss_curves(history: pd.DataFrame, best_epoch: int | None = None, ax=None, title: str = ""):
    """The paper's Fig. 5: training and validation loss per epoch, the kept epoch marked."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    ax.plot(history["epoch"], history["train_loss"], label="training")
    ax.plot(history["epoch"], history["val_loss"], label="validation")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="k", ls=":", label=f"kept epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss (standardised log target)")
    ax.set_yscale("log")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def target_distributions(table: pd.DataFrame,
                         targets=("log_mstar", "log_mtot", "log_fdm", "log_ml_r")):
    """Histograms of the central truths for late and early types."""
    fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 3.4),
                             constrained_layout=True)
    for ax, name in zip(np.atleast_1d(axes), targets, strict=True):
        for code, lab, c in ((0, "late type", "tab:blue"), (1, "early type", "tab:red")):
            vals = table.loc[table.galaxy_type == code, name].dropna()
            if len(vals):
                ax.hist(vals, bins=25, histtype="step", color=c, label=lab, lw=1.5)
        ax.set_xlabel(label(name))
        ax.set_ylabel("samples")
    np.atleast_1d(axes)[0].legend(fontsize="small")
    return fig


def correlation_heatmap(corr: pd.DataFrame, title: str = "Pearson correlation"):
    """The paper's Fig. 10: Pearson R between features and targets."""
    import seaborn as sns

    n = len(corr)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2, 0.5 * n + 1.5), constrained_layout=True)
    sns.heatmap(corr, vmin=-1, vmax=1, cmap="RdBu_r", annot=n <= 20, fmt=".2f",
                annot_kws={"fontsize": "x-small"}, square=True,
                cbar_kws={"label": "Pearson R"}, ax=ax)
    ax.set_title(title)
    return fig


def run_overview(run, max_targets: int = 3):
    """Predicted vs true per target (by galaxy type) and the loss curves of one run."""
    targets = list(prediction_pairs(run.predictions).items())[:max_targets]
    has_hist = run.history is not None and "val_loss" in run.history
    n = len(targets) + int(has_hist)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.2), constrained_layout=True)
    axes = np.atleast_1d(axes)
    p = run.predictions
    for ax, (t, (true_col, pred_col)) in zip(axes, targets, strict=False):
        pred_vs_true(p[pred_col], p[true_col], t, ax=ax,
                     groups=p["galaxy_type"] if "galaxy_type" in p else None)
    if has_hist:
        loss_curves(run.history, run.metrics.get("best_epoch"), ax=axes[-1])
    fig.suptitle(f"{run.kind} run '{run.name}' ({run.profile} profile)")
    return fig


def gbdt_overview(run):
    """The paper's Figs. 4, 11, 12 for one LightGBM run: prediction, importances, curves."""
    from analysis_lib.models.gbdt import load_extras

    extras = load_extras(run.path)
    imp = extras["importance"].set_index("feature")
    t, (true_col, pred_col) = next(iter(prediction_pairs(run.predictions).items()))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    p = run.predictions
    pred_vs_true(p[pred_col], p[true_col], t, ax=axes[0], groups=p.get("galaxy_type"))
    cols = [c for c in ("gain", "permutation_frac", "shap") if c in imp]
    imp[cols].sort_values(cols[0]).plot.barh(ax=axes[1])
    axes[1].set_xlabel("normalised importance")
    axes[1].set_ylabel("feature")
    axes[1].legend(["gain", "permutation", "SHAP mean |value|"][: len(cols)], fontsize="small")
    h = run.history
    if h is not None:
        for col, lab in (("train_l2", "train MSE"), ("test_l2", "test MSE"),
                         ("train_l1", "train MAE"), ("test_l1", "test MAE")):
            if col in h:
                axes[2].plot(h["round"], h[col], label=lab)
        axes[2].set_xlabel("boosting round")
        axes[2].set_ylabel("loss [dex² (MSE) or dex (MAE)]")
        axes[2].set_yscale("log")
        axes[2].legend(fontsize="small")
    fig.suptitle(f"LightGBM '{run.name}' ({run.profile} profile)")
    return fig


def method_comparison(comparison, groups=("all", "early", "late")):
    """Scatter of log10(pred/true) per method and target, on the same galaxies, by group."""
    t = comparison.table
    targets = [x for x in ("log_mstar", "log_mtot", "log_fdm", "log_ml_r") if x in set(t.target)]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.2), sharey=True,
                             constrained_layout=True)
    methods = sorted(set(t.method))
    comparison_name = f"{comparison.jam.kind}: {comparison.jam.name}"
    for ax, group in zip(np.atleast_1d(axes), groups, strict=True):
        sub = t[t.group == group].pivot(index="target", columns="method", values="sigma")
        sub = sub.reindex(targets)
        if not sub.empty:  # tab20: up to 20 methods without two sharing a colour; JAM black
            colours = ["black" if m == comparison_name else plt.cm.tab20(methods.index(m) % 20)
                       for m in sub.columns]
            sub.plot.bar(ax=ax, rot=0, legend=False, color=colours)
        ax.set_title(f"{group} galaxies")
        ax.set_xlabel("target")
        ax.set_ylabel(r"1$\sigma$ scatter of $\log_{10}$(pred/true) [dex]")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    if handles:  # one legend for all panels, below them rather than over the bars
        fig.legend(handles, labels, fontsize="small", loc="outside lower center", ncol=4)
    return fig


def baseline_figure(baseline, target: str = "log_mstar"):
    """The paper's Fig. 6 (bottom): the power-law fit of M* on L and its test-set residuals."""
    p = baseline.predictions
    lum = baseline.metrics.get("luminosity", "log_lum_r_proj")
    fit = baseline.metrics.get("fit", {}).get(target, {})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    ax = axes[0]
    for code, lab, c in ((0, "late type", "tab:blue"), (1, "early type", "tab:red")):
        sel = p.galaxy_type == code
        ax.scatter(p.loc[sel, f"true_{lum}"], p.loc[sel, f"true_{target}"], s=8, alpha=0.6,
                   color=c, lw=0, label=lab)
    if fit:
        x = np.linspace(p[f"true_{lum}"].min(), p[f"true_{lum}"].max(), 50)
        ax.plot(x, fit["intercept"] + fit["slope"] * x, "k-",
                label=f"fit: slope {fit['slope']:.2f} (training set)")
    ax.set_xlabel(r"$\log_{10} L_r$ (dust-attenuated, projected $<R_{1/2}$) [L$_\odot$]")
    ax.set_ylabel(label(target))
    ax.legend(fontsize="small")
    pred_vs_true(p[f"pred_{target}"], p[f"true_{target}"], target, ax=axes[1],
                 groups=p.galaxy_type, title="power-law prediction, test set")
    return fig


METHOD_COLOURS = {"CNN": "tab:blue", "LightGBM": "tab:green", "power law": "tab:orange",
                  "JAM": "tab:purple"}


def method_summary(table: pd.DataFrame, max_label: int = 58):
    """Every method's bias and scatter beside the paper's (the discussion's summary figure).

    `table` has discussion.headline_table's columns, one row per claim; this study's numbers are
    filled circles coloured by method, the paper's (IllustrisTNG100) open black diamonds on the
    same row, so the horizontal gap between them is the disagreement in dex.
    """
    t = table.reset_index(drop=True)
    if t.empty:
        raise ValueError("method_summary: the headline table is empty (no stored runs)")
    labels = [f"{m}: {q}" if len(f"{m}: {q}") <= max_label else f"{m}: {q}"[:max_label - 1]
              + "\u2026" for m, q in zip(t["method"], t["question"], strict=True)]
    y = np.arange(len(t))[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.8 + 0.42 * len(t)), sharey=True,
                             constrained_layout=True, gridspec_kw={"width_ratios": [1, 1]})
    columns = (("bias [dex]", "paper bias [dex] (TNG100)",
                "bias [dex]\n" r"(mean of $\log_{10}$ pred/true)"),
               ("sigma [dex]", "paper sigma [dex] (TNG100)",
                "scatter [dex]\n" r"(1$\sigma$ of $\log_{10}$ pred/true)"))
    for ax, (ours, paper, xlabel) in zip(axes, columns, strict=True):
        for method, colour in METHOD_COLOURS.items():
            sel = (t["method"] == method).to_numpy()
            if sel.any():
                ax.scatter(t.loc[sel, ours], y[sel], color=colour, s=60, zorder=4,
                           label=f"{method} (this study)")
        other = ~t["method"].isin(list(METHOD_COLOURS)).to_numpy()
        if other.any():
            ax.scatter(t.loc[other, ours], y[other], color="grey", s=60, zorder=4,
                       label="other (this study)")
        has = t[paper].notna().to_numpy()
        ax.scatter(t.loc[has, paper], y[has], marker="D", facecolors="none",
                   edgecolors="black", s=110, lw=1.5, zorder=3, label="paper (TNG100)")
        for yi, a, b in zip(y[has], t.loc[has, ours], t.loc[has, paper], strict=True):
            ax.plot([a, b], [yi, yi], color="0.6", lw=1, zorder=2)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].axvline(0, color="k", lw=0.8)
    axes[1].set_xlim(left=0)
    axes[0].set_yticks(y, labels)
    axes[0].set_ylim(-0.7, len(t) - 0.3)
    handles, names = axes[1].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 3))
    data = "; ".join(sorted(set(t.get("data (this study)", pd.Series(["?"])))))
    fig.suptitle(f"This study ({data}) beside the paper", fontsize="medium")
    return fig
