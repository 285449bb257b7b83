"""The CNN's inputs: which dataset arrays feed which branch, and the pixel and target scaling.

Scaling is fitted per branch on the TRAINING rows over the whole dataset (never per image, so
absolute flux survives); validation and test pixels use the same numbers.

- Images (r, g): the paper's linear scaling to [0, 1], min/max over all training pixels
  (dataset-wide, so the r image keeps the galaxies' luminosity), not clipped: a brighter test
  galaxy reads above 1. 'log' (cnn.pixel_scaling) scales log10(flux) instead, with a floor of
  cnn.log_floor_rel times the training maximum. Images have no masked pixels.
- Kinematic maps (vel_map, sigma_map) and the g-r colour map have pixels without a value (the
  dataset's map_mask; colour where g or r is below the floor). THE MASK REACHES THE NETWORK AS
  ITS OWN INPUT CHANNEL: these branches get 2 channels, (scaled value, valid), valid = 1 where
  the pixel has a value and 0 where it has none. Masked pixels also take a documented scaled
  value, the one of a physically neutral reading, so that the value channel alone never claims
  something false:
  - vel_map: scaled symmetrically, v -> 0.5 + 0.5 v / v_max, v_max = max |v| over the valid
    training pixels, so 0 km/s reads 0.5 and masked pixels are 0.5 (0 km/s), not -v_max;
  - sigma_map: sigma -> sigma / sigma_max (0 km/s reads 0); masked pixels are 0 (0 km/s);
  - colour_gr: -2.5 log10(g/r) per pixel (a ratio of Lsun, offset from the AB colour by a
    constant that the scaling removes), scaled with ROBUST percentiles: the 1st and 99th
    percentiles of the valid training pixels go to 0 and 1 and values beyond are clipped (the
    faint outskirts' extreme ratios no longer squeeze the galaxy's colours into a narrow band);
    masked pixels take the scaled median colour of the valid training pixels.
  The maps are linear and not clipped: their extremes are the most massive galaxies' rotation
  and dispersion, information, not outliers.
- Targets are standardised (TargetScaler).

Arrays are read in blocks of rows so the largest inputs never need two full copies in memory;
the colour percentiles come from a histogram of the training pixels (COLOUR_HISTOGRAM_BINS bins
between their min and max), so they are exact to a bin width without holding every pixel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from analysis_lib.dataset import GalaxyDataset

IMAGE_INPUTS = {"image_r": "r", "image_g": "g"}
MAP_INPUT_NAMES = ("vel_map", "sigma_map")
COLOUR_INPUT = "colour_gr"
ALL_INPUTS = (*IMAGE_INPUTS, COLOUR_INPUT, *MAP_INPUT_NAMES)
# Version of how arrays become network inputs (channels, scaling, masked values). Stored runs
# and checkpoints carry it in their fingerprint, so a change here retrains instead of reusing.
# 2: maps and colour carry their mask as a second channel; 0 km/s for masked velocities;
#    colour scaled by robust percentiles.
INPUT_FORMAT_VERSION = 2
SCALINGS = ("linear", "log")
MASKED_KINDS = ("map", "colour")  # branches with a validity mask: (value, valid) channels
COLOUR_PERCENTILES = (1.0, 99.0)  # robust range of the colour map, clipped beyond
COLOUR_HISTOGRAM_BINS = 200_000


def branch_channels(name: str) -> int:
    """Input channels of a branch: 1 for images, 2 (value, valid) for maps and the colour map."""
    if name in IMAGE_INPUTS:
        return 1
    if name == COLOUR_INPUT or name in MAP_INPUT_NAMES:
        return 2
    raise CNNExperimentError(f"unknown input '{name}' (choose from {', '.join(ALL_INPUTS)})")


class CNNExperimentError(ValueError):
    """An experiment or configuration that cannot be trained; the message names the field."""


# =========================================================================== inputs and scaling


@dataclass(frozen=True)
class InputSpec:
    """One network branch: its name, what kind of array it is and where it comes from."""

    name: str  # image_r, image_g, colour_gr, vel_map, sigma_map
    kind: str  # image | colour | map
    sources: tuple[str, ...]  # dataset input names read to make it
    size: int  # pixels per side

    @property
    def channels(self) -> int:
        """1 for images; 2 (scaled value, valid) for branches with masked pixels."""
        return 2 if self.kind in MASKED_KINDS else 1


def choose_resolution(requested: int, available: Sequence[int], cap: int) -> int:
    """The largest image size in the dataset that is <= min(requested, cap)."""
    limit = min(int(requested), int(cap))
    usable = [s for s in available if s <= limit]
    if not usable:
        raise CNNExperimentError(f"no image of <= {limit} px in the dataset (it has "
                                 f"{sorted(available)}; cnn.image_size={cap})")
    return max(usable)


def resolve_inputs(dataset: GalaxyDataset, experiment: dict, cap: int) -> list[InputSpec]:
    """The branches of an experiment, at the resolution the profile allows."""
    names = experiment.get("inputs") or []
    unknown = [n for n in names if n not in ALL_INPUTS]
    if not names or unknown:
        raise CNNExperimentError(f"experiment '{experiment.get('name')}': inputs {names} "
                                 f"(unknown: {unknown}; choose from {', '.join(ALL_INPUTS)})")
    size = 0  # maps-only experiments need no image resolution
    if any(n not in MAP_INPUT_NAMES for n in names):
        size = choose_resolution(experiment.get("resolution") or max(dataset.image_sizes),
                                 dataset.image_sizes, cap)
    with_maps = any(n in MAP_INPUT_NAMES for n in names)
    map_size = None
    if with_maps:
        map_size = int(dataset.load_inputs(["vel_map"], np.array([0]))["vel_map"].shape[-1])
    specs = []
    for name in names:
        if name in IMAGE_INPUTS:
            specs.append(InputSpec(name, "image", (f"image_{IMAGE_INPUTS[name]}_{size}",), size))
        elif name == COLOUR_INPUT:
            specs.append(InputSpec(name, "colour", (f"image_g_{size}", f"image_r_{size}"), size))
        else:
            specs.append(InputSpec(name, "map", (name, "map_mask"), map_size))
    return specs


@dataclass
class PixelScaler:
    """x -> (f(x) - lo) / (hi - lo), f = identity or log10(max(x, floor)).

    Branches with a mask (maps, colour) return (value, valid) channels; masked pixels take the
    value `fill`; `clip` clips the value channel to [0, 1] (the colour's robust range).
    """

    name: str
    kind: str
    mode: str
    lo: float
    hi: float
    floor: float = 0.0
    fill: float = 0.0
    clip: bool = False

    @property
    def channels(self) -> int:
        return 2 if self.kind in MASKED_KINDS else 1

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Physical values (after the log for log-scaled images) -> scaled float32."""
        out = ((values - self.lo) / (self.hi - self.lo)).astype(np.float32)
        return np.clip(out, 0.0, 1.0) if self.clip else out

    def __call__(self, arrays: dict[str, np.ndarray], spec: InputSpec) -> np.ndarray:
        """(rows, channels, N, N) float32: the scaled value, then (masked branches) validity."""
        values, valid = raw_values(arrays, spec, self.floor)
        if self.mode == "log" and spec.kind == "image":
            values = np.log10(np.maximum(values, self.floor))
        out = self.scale(values)
        if valid is None:
            return out[:, None]
        out[~valid] = self.fill
        return np.stack([out, valid.astype(np.float32)], axis=1)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "mode": self.mode, "lo": self.lo, "hi": self.hi,
                "floor": self.floor, "fill": self.fill, "clip": self.clip,
                "channels": self.channels}


def raw_values(arrays: dict[str, np.ndarray], spec: InputSpec, floor: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """The physical values of a branch and its validity mask (None = every pixel valid)."""
    if spec.kind == "image":
        return arrays[spec.sources[0]].astype(np.float64), None
    if spec.kind == "map":
        return arrays[spec.name].astype(np.float64), arrays["map_mask"].astype(bool)
    g = arrays[spec.sources[0]].astype(np.float64)
    r = arrays[spec.sources[1]].astype(np.float64)
    valid = (g > floor) & (r > floor)
    colour = np.zeros_like(r)
    colour[valid] = -2.5 * np.log10(g[valid] / r[valid])
    return colour, valid


def iter_blocks(dataset: GalaxyDataset, names: Sequence[str], rows: np.ndarray,
                block: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(rows, arrays) in blocks, so the largest inputs never need two copies in memory."""
    rows = np.asarray(rows)
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        yield part, dataset.load_inputs(list(dict.fromkeys(names)), part)


def _min_max(values: np.ndarray, valid: np.ndarray | None) -> tuple[float, float]:
    v = values if valid is None else values[valid]
    if v.size == 0:
        return math.inf, -math.inf
    return float(v.min()), float(v.max())


def _histogram_percentiles(counts: np.ndarray, edges: np.ndarray,
                           percentiles: Sequence[float]) -> list[float]:
    """Percentiles of histogrammed values, linear within a bin (exact to a bin width)."""
    cum = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    cum /= cum[-1]
    return [float(np.interp(p / 100.0, cum, edges)) for p in percentiles]


def fit_scalers(dataset: GalaxyDataset, specs: Sequence[InputSpec], train_rows: np.ndarray,
                mode: str = "linear", log_floor_rel: float = 1e-6, block: int = 1024
                ) -> dict[str, PixelScaler]:
    """Per-branch scaling from the valid pixels of the TRAINING rows only (see module doc)."""
    if mode not in SCALINGS:
        raise CNNExperimentError(f"cnn.pixel_scaling must be one of {SCALINGS}, not '{mode}'")
    if len(train_rows) == 0:
        raise CNNExperimentError(f"{dataset.path}: no training rows to fit the pixel scaling")
    # pass 1: flux maxima (the floors of log scaling and of the colour are relative to them)
    flux_max: dict[str, float] = {}
    names = sorted({s for spec in specs for s in spec.sources})
    for _, arrays in iter_blocks(dataset, names, train_rows, block):
        for name, arr in arrays.items():
            if name.startswith("image_"):
                flux_max[name] = max(flux_max.get(name, -math.inf), float(arr.max()))
    # pass 2: min/max of the values the network sees (|v| max for the velocity map)
    lims = {spec.name: [math.inf, -math.inf] for spec in specs}
    floors = {}
    for spec in specs:
        if spec.kind == "image":
            floors[spec.name] = log_floor_rel * flux_max[spec.sources[0]] if mode == "log" else 0.0
        elif spec.kind == "colour":
            floors[spec.name] = log_floor_rel * flux_max[spec.sources[1]]
        else:
            floors[spec.name] = 0.0
    for _, arrays in iter_blocks(dataset, names, train_rows, block):
        for spec in specs:
            values, valid = raw_values(arrays, spec, floors[spec.name])
            if mode == "log" and spec.kind == "image":
                values = np.log10(np.maximum(values, floors[spec.name]))
            lo, hi = _min_max(values, valid)
            lims[spec.name] = [min(lims[spec.name][0], lo), max(lims[spec.name][1], hi)]
    for spec in specs:
        lo, hi = lims[spec.name]
        # constant to float precision (e.g. one colour everywhere) cannot be scaled
        if not (np.isfinite(lo) and np.isfinite(hi) and hi - lo > 1e-6 * max(abs(hi), abs(lo))):
            raise CNNExperimentError(f"{dataset.path}: input '{spec.name}' is constant or "
                                     f"empty on the training rows (min {lo}, max {hi})")
    # pass 3 (colour only): robust percentiles from a histogram of the valid training pixels
    colour = [spec for spec in specs if spec.kind == "colour"]
    robust: dict[str, list[float]] = {}
    if colour:
        hist = {spec.name: np.zeros(COLOUR_HISTOGRAM_BINS, np.int64) for spec in colour}
        edges = {spec.name: np.linspace(*lims[spec.name], COLOUR_HISTOGRAM_BINS + 1)
                 for spec in colour}
        for _, arrays in iter_blocks(dataset, names, train_rows, block):
            for spec in colour:
                values, valid = raw_values(arrays, spec, floors[spec.name])
                hist[spec.name] += np.histogram(values[valid], bins=COLOUR_HISTOGRAM_BINS,
                                                range=tuple(lims[spec.name]))[0]  # uniform: fast
        for spec in colour:
            robust[spec.name] = _histogram_percentiles(hist[spec.name], edges[spec.name],
                                                       (*COLOUR_PERCENTILES, 50.0))
    scalers = {}
    for spec in specs:
        lo, hi = lims[spec.name]
        fill, clip = 0.0, False
        if spec.name == "vel_map":
            lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))  # 0 km/s -> 0.5
            fill = 0.5
        elif spec.name == "sigma_map":
            lo = 0.0  # 0 km/s -> 0; masked pixels read 0 km/s
        elif spec.kind == "colour":
            lo, hi, median = robust[spec.name]
            if not hi > lo:
                raise CNNExperimentError(f"{dataset.path}: input '{spec.name}' has its "
                                         f"{COLOUR_PERCENTILES} percentiles equal ({lo})")
            fill, clip = (median - lo) / (hi - lo), True
        scalers[spec.name] = PixelScaler(spec.name, spec.kind, mode, lo, hi, floors[spec.name],
                                         float(fill), clip)
    return scalers


def load_scaled_inputs(dataset: GalaxyDataset, specs: Sequence[InputSpec],
                       scalers: dict[str, PixelScaler], rows: np.ndarray,
                       dtype: torch.dtype = torch.float32, block: int = 1024,
                       progress: bool = False) -> dict[str, torch.Tensor]:
    """Scaled (len(rows), channels, N, N) host tensors per branch, rows in the order given."""
    out = {s.name: torch.empty((len(rows), s.channels, s.size, s.size), dtype=dtype)
           for s in specs}
    names = sorted({s for spec in specs for s in spec.sources})
    done = 0
    blocks = iter_blocks(dataset, names, rows, block)
    for part, arrays in tqdm(blocks, total=math.ceil(len(rows) / block), disable=not progress,
                             desc="loading inputs", leave=False):
        for spec in specs:
            scaled = scalers[spec.name](arrays, spec)
            out[spec.name][done:done + len(part)] = torch.from_numpy(scaled).to(dtype)
        done += len(part)
    return out


@dataclass
class TargetScaler:
    """Standardises log targets with the training mean and standard deviation."""

    names: list[str]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, names: list[str]) -> TargetScaler:
        std = values.std(axis=0)
        if np.any(std <= 0):
            bad = [n for n, s in zip(names, std, strict=True) if s <= 0]
            raise CNNExperimentError(f"target(s) {bad} are constant on the training rows")
        return cls(list(names), values.mean(axis=0), std)

    def forward(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean

    def as_dict(self) -> dict:
        return {n: {"mean": float(m), "std": float(s)}
                for n, m, s in zip(self.names, self.mean, self.std, strict=True)}
