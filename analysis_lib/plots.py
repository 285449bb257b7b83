"""Figures for the book: presentation only, every axis labelled with its units."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

LABELS = {
    "log_mstar": r"$\log_{10} M_*(<R_{1/2})$ [M$_\odot$]",
    "log_mtot": r"$\log_{10} M_{\rm tot}(<R_{1/2})$ [M$_\odot$]",
    "log_mdm": r"$\log_{10} M_{\rm DM}(<R_{1/2})$ [M$_\odot$]",
    "log_mstar_proj": r"$\log_{10} M_{*,\rm proj}(<R_{1/2})$ [M$_\odot$]",
    "log_ml_r": r"$\log_{10} M_*/L_r$ [M$_\odot$/L$_\odot$]",
    "log_fdm": r"$\log_{10} f_{\rm DM}(<R_{1/2})$",
    "log_fstar": r"$\log_{10} f_*(<R_{1/2})$",
}


def label(name: str) -> str:
    return LABELS.get(name, name)


def galaxy_panels(images: dict[str, np.ndarray], fov_rhalf: float = 3.0, title: str = ""):
    """The paper's Fig. 1: r image, g-r colour, mean velocity and dispersion of one sample."""
    size = next(k for k in images if k.startswith("image_r_"))
    n = size.split("_")[-1]
    r, g = images[f"image_r_{n}"], images[f"image_g_{n}"]
    mask = images.get("map_mask")
    ext = [-fov_rhalf, fov_rhalf, -fov_rhalf, fov_rhalf]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), constrained_layout=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.log10(np.where(r > 0, r, np.nan))
        gr = -2.5 * np.log10(np.where((r > 0) & (g > 0), g / r, np.nan))
    panels = [
        (mu, "magma", r"$\log_{10} L_r$ [L$_\odot$ pixel$^{-1}$]", "r-band image"),
        (gr, "RdYlBu_r", r"$g-r$ [mag] (relative to solar)", "g - r colour"),
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
        fig.colorbar(im, ax=ax, label=clabel, shrink=0.85)
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
    if groups is None:
        ax.scatter(true, pred, s=6, alpha=0.5, lw=0)
    else:
        for code, lab, c in ((0, "late type", "tab:blue"), (1, "early type", "tab:red")):
            sel = np.asarray(groups) == code
            ax.scatter(true[sel], pred[sel], s=6, alpha=0.5, lw=0, color=c, label=lab)
    lo, hi = np.nanmin([true.min(), pred.min()]), np.nanmax([true.max(), pred.max()])
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.text(0.04, 0.94, f"bias {d.mean():+.3f} dex\n$\\sigma$ {d.std(ddof=1):.3f} dex",
            transform=ax.transAxes, va="top")
    ax.set_xlabel("true " + label(name))
    ax.set_ylabel("predicted " + label(name))
    if groups is not None:
        ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
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
        ax.set_title(title, fontsize=10)
    return ax
