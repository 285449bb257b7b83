"""The same galaxy under each instrument: r image, velocity and dispersion maps with their bins.

For the book's data or methods chapter: `instrument_panels` observes one galaxy's line of sight
with every instrument (same particles, same dust) and `plot_instruments` draws one row per
instrument: the r image (log surface brightness), the velocity map and the dispersion map the
dataset stores, with the Voronoi bin edges drawn on the binned maps and the lambda_R aperture.
"""

from __future__ import annotations

import copy

import numpy as np

from analysis_lib.config import instruments as instrument_table
from analysis_lib.config import load_config
from analysis_lib.observe import observe_galaxy
from analysis_lib.particles import Galaxy


def instrument_panels(galaxy: Galaxy, cfg: dict, projection: str = "x",
                      names: list[str] | None = None) -> list[dict]:
    """One record per instrument (dataset keys) for one line of sight, plus 'instrument'.

    cfg: a resolved configuration (its profile sets image and map sizes); each instrument in
    `names` (default: all of instruments.yaml) replaces cfg['instrument'].
    """
    out = []
    for name in names or list(instrument_table()):
        c = copy.deepcopy(cfg)
        c["observe"]["instrument"] = name
        c["instrument"] = load_config(cfg.get("profile", "smoke"),
                                      {"observe.instrument": name})["instrument"]
        c["data"]["projections"] = [projection]
        rec = observe_galaxy(galaxy, c)[0]
        rec["instrument"] = name
        out.append(rec)
    return out


def _bin_edges(vel: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixels where the painted value changes between neighbours (bin borders), as a mask."""
    edge = np.zeros(vel.shape, dtype=bool)
    dh = (vel[:, 1:] != vel[:, :-1]) & mask[:, 1:] & mask[:, :-1]
    dv = (vel[1:, :] != vel[:-1, :]) & mask[1:, :] & mask[:-1, :]
    edge[:, 1:] |= dh
    edge[1:, :] |= dv
    return edge


def plot_instruments(records: list[dict], source: str = "mock universe", image_size: int = 0,
                     fov_rhalf: float = 3.0):
    """Figure: rows = instruments, columns = r image, V map, sigma map (axes in R_half).

    Masked map pixels are blank; bin borders are drawn on binned maps; the dashed circle marks
    R_half (the `ideal` lambda_R aperture; survey instruments use the projected half-light
    radius, somewhat smaller). Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    n = len(records)
    fig, axes = plt.subplots(n, 3, figsize=(13, 3.6 * n), squeeze=False)
    ext = [-fov_rhalf, fov_rhalf, -fov_rhalf, fov_rhalf]
    vmax = max(np.abs(r["vel_map"][r["map_mask"]]).max(initial=1.0) for r in records)
    smax = max(r["sigma_map"][r["map_mask"]].max(initial=1.0) for r in records)
    for row, rec in zip(axes, records, strict=True):
        sizes = sorted(int(k.rsplit("_", 1)[1]) for k in rec if k.startswith("image_r_"))
        size = image_size or sizes[-1]
        img = rec[f"image_r_{size}"].astype(float)
        pix_pc = rec["pixel_scale_kpc"] * 1e3 * sizes[-1] / size  # the stored scale: largest
        sb = np.log10(np.clip(img, 1e-3 * max(img.max(), 1e-30), None) / pix_pc**2)
        im = row[0].imshow(sb, origin="lower", extent=ext, cmap="magma")
        fig.colorbar(im, ax=row[0], label=r"log$_{10}$ $I_r$ [L$_\odot$ pc$^{-2}$]")
        mask = rec["map_mask"]
        vel = np.where(mask, rec["vel_map"], np.nan)
        sig = np.where(mask, rec["sigma_map"], np.nan)
        im = row[1].imshow(vel, origin="lower", extent=ext, cmap="RdBu_r", vmin=-vmax,
                           vmax=vmax)
        fig.colorbar(im, ax=row[1], label=r"$V$ [km s$^{-1}$]")
        im = row[2].imshow(sig, origin="lower", extent=ext, cmap="viridis", vmin=0, vmax=smax)
        fig.colorbar(im, ax=row[2], label=r"$\sigma$ [km s$^{-1}$]")
        edges = _bin_edges(rec["vel_map"], mask)
        if instrument_table()[rec["instrument"]]["ifu"]["maps"] == "binned":  # show the bins
            for ax in row[1:]:
                ax.contour(edges.astype(float), levels=[0.5], colors="k", linewidths=0.3,
                           extent=ext, origin="lower")
        for ax in row:
            ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="w", lw=0.8, ls="--"))
            ax.set_xlabel(r"$x$ [$R_{1/2}$]")
            ax.set_ylabel(r"$y$ [$R_{1/2}$]")
        row[0].set_title(f"{rec['instrument']}: r image", fontsize=10)
        row[1].set_title(f"velocity, $\\lambda_R$ = {rec['lambda_r']:.2f}", fontsize=10)
        row[2].set_title(f"dispersion, $\\sigma_e$ = {rec['sigma_e']:.0f} km/s", fontsize=10)
    fig.suptitle(f"Galaxy {records[0]['galaxy_id']}, projection {records[0]['projection']} "
                 f"({source}), as each instrument sees it")
    fig.tight_layout()
    return fig
