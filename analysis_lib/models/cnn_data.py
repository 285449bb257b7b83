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

  - vel_map: scaled symmetrically, v -> 0.5 + 0.5 v / v_max, ``v_max = max |v|`` over the valid
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

Reading. The dataset stores each input gzip-compressed, one chunk per row. h5py's fancy
indexing (`dset[sorted_rows]`) reads such a file 5-7x slower than slab reads, so `read_rows`
reads each run of consecutive rows as one slab (a scattered row is a run of one) into a
preallocated array. When the raw inputs of the rows an experiment uses fit in
`cnn.read_once_gb`, `prepare_inputs` reads them ONCE into memory and fits the scalers and
scales from there (one read of the file instead of three or four: the scaler passes and the
load); larger inputs are streamed in blocks of rows, so they never need two full copies in
memory. Both paths compute the same numbers (min, max and histogram counts do not depend on
how rows are grouped). The colour percentiles come from a histogram of the training pixels
(COLOUR_HISTOGRAM_BINS bins between their min and max), exact to a bin width without holding
every pixel.

Resolution. An experiment asks for an image size (its 'resolution'); the largest size the
dataset has that is <= min(resolution, cnn.image_size) is used. When the dataset has none that
small but has a size that is an integer multiple of it, the image is re-binned on the fly by
summing blocks of pixels, exactly as the dataset makes its own smaller sizes
(observe.images.rebin): e.g. the paper profile's 60-px images give the 30-px resolution test.
The run records the size used and the size it was re-binned from.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from analysis_lib.dataset import DatasetError, GalaxyDataset
from analysis_lib.io import tqdm_options

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
    rebin: int = 1  # sources are `rebin` x larger per side; blocks of pixels are summed

    @property
    def channels(self) -> int:
        """1 for images; 2 (scaled value, valid) for branches with masked pixels."""
        return 2 if self.kind in MASKED_KINDS else 1


def resolution_source(requested: int, available: Sequence[int], cap: int) -> tuple[int, int]:
    """(size used, dataset size read) for an experiment's requested image size.

    The largest dataset size <= min(requested, cap) is used as it is. If there is none, the
    smallest dataset size that is an integer multiple of that limit is re-binned to it (a sum
    of pixel blocks, as the dataset makes its own smaller sizes). Neither: CNNExperimentError.
    """
    limit = min(int(requested), int(cap))
    usable = [s for s in available if s <= limit]
    if usable:
        return max(usable), max(usable)
    multiples = [s for s in available if limit > 0 and s % limit == 0]
    if multiples:
        return limit, min(multiples)
    raise CNNExperimentError(f"no image of <= {limit} px in the dataset, nor one that re-bins "
                             f"to {limit} px (it has {sorted(available)}; "
                             f"cnn.image_size={cap})")


def choose_resolution(requested: int, available: Sequence[int], cap: int) -> int:
    """The image size an experiment uses (see resolution_source)."""
    return resolution_source(requested, available, cap)[0]


def plan_inputs(experiment: dict, image_sizes: Sequence[int], map_size: int | None,
                cap: int) -> list[InputSpec]:
    """The branches of an experiment, for a dataset of these image sizes and map size.

    Needs no file, so `train-cnn --dry-run` can check a selection against a profile whose
    dataset does not exist yet.
    """
    names = experiment.get("inputs") or []
    unknown = [n for n in names if n not in ALL_INPUTS]
    if not names or unknown:
        raise CNNExperimentError(f"experiment '{experiment.get('name')}': inputs {names} "
                                 f"(unknown: {unknown}; choose from {', '.join(ALL_INPUTS)})")
    size, source = 0, 0  # maps-only experiments need no image resolution
    if any(n not in MAP_INPUT_NAMES for n in names):
        if not image_sizes:
            raise CNNExperimentError(f"experiment '{experiment.get('name')}': no image sizes")
        try:
            size, source = resolution_source(experiment.get("resolution") or max(image_sizes),
                                             image_sizes, cap)
        except CNNExperimentError as exc:
            raise CNNExperimentError(f"experiment '{experiment.get('name')}': {exc}") from None
    rebin = source // size if size else 1
    specs = []
    for name in names:
        if name in IMAGE_INPUTS:
            specs.append(InputSpec(name, "image", (f"image_{IMAGE_INPUTS[name]}_{source}",),
                                   size, rebin))
        elif name == COLOUR_INPUT:
            specs.append(InputSpec(name, "colour", (f"image_g_{source}", f"image_r_{source}"),
                                   size, rebin))
        else:
            specs.append(InputSpec(name, "map", (name, "map_mask"), int(map_size or 0)))
    return specs


def resolve_inputs(dataset: GalaxyDataset, experiment: dict, cap: int) -> list[InputSpec]:
    """The branches of an experiment, at the resolution the profile allows."""
    names = experiment.get("inputs") or []
    map_size = None
    if any(n in MAP_INPUT_NAMES for n in names):
        map_size = int(read_rows(dataset.path, ["vel_map"], np.array([0]))["vel_map"].shape[-1])
    return plan_inputs(experiment, dataset.image_sizes, map_size, cap)


def rebin_images(arr: np.ndarray, factor: int) -> np.ndarray:
    """Sum blocks of factor x factor pixels of (rows, N, N) images (flux-conserving)."""
    if factor == 1:
        return arr
    n = arr.shape[-1] // factor
    return arr.reshape(*arr.shape[:-2], n, factor, n, factor).sum(axis=(-3, -1))


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
        return rebin_images(arrays[spec.sources[0]].astype(np.float64), spec.rebin), None
    if spec.kind == "map":
        return arrays[spec.name].astype(np.float64), arrays["map_mask"].astype(bool)
    g = rebin_images(arrays[spec.sources[0]].astype(np.float64), spec.rebin)
    r = rebin_images(arrays[spec.sources[1]].astype(np.float64), spec.rebin)
    valid = (g > floor) & (r > floor)
    colour = np.zeros_like(r)
    colour[valid] = -2.5 * np.log10(g[valid] / r[valid])
    return colour, valid


def _runs(sorted_rows: np.ndarray) -> list[tuple[int, int, int]]:
    """(first row, stop row, position in sorted_rows) of each run of consecutive rows."""
    if len(sorted_rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(sorted_rows)]])
    return [(int(sorted_rows[a]), int(sorted_rows[b - 1]) + 1, int(a))
            for a, b in zip(starts, stops, strict=True)]


def read_rows(path: str | Path, names: Sequence[str], rows: np.ndarray
              ) -> dict[str, np.ndarray]:
    """Dataset inputs for the given rows (in the order given), read fast.

    Each run of consecutive rows is one slab read into a preallocated array (a scattered row
    is a run of one): with the dataset's one-gzip-chunk-per-row layout this is 5-7x faster
    than h5py's fancy indexing (dset[sorted_rows]), which is what GalaxyDataset.load_inputs
    does. Same values as load_inputs; a missing input or unreadable chunk is one DatasetError.
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    srt = rows[order]
    runs = _runs(srt)
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for name in dict.fromkeys(names):
                key = f"inputs/{name}"
                if key not in f:
                    raise DatasetError(f"{path}: no input '{name}'")
                dset = f[key]
                data = np.empty((len(rows), *dset.shape[1:]), dtype=dset.dtype)
                for first, stop, at in runs:
                    dset.read_direct(data, np.s_[first:stop], np.s_[at:at + stop - first])
                if len(rows) and not np.all(order[:-1] < order[1:]):  # not already sorted
                    unsorted = np.empty_like(data)
                    unsorted[order] = data
                    data = unsorted
                out[name] = data
    except OSError as exc:  # a damaged chunk (filter failure), a file gone or unreadable
        raise DatasetError(f"{path}: cannot read its inputs ({' '.join(str(exc).split())})"
                           ) from exc
    return out


class InMemoryInputs:
    """Raw dataset inputs of some rows, read once into memory, read like a GalaxyDataset.

    fit_scalers and load_scaled_inputs accept it in place of the dataset, so the scaler
    passes and the load all read memory instead of the file.
    """

    def __init__(self, path: str | Path, names: Sequence[str], rows: np.ndarray) -> None:
        self.path = Path(path)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.arrays = read_rows(path, names, self.rows)
        self.position = {int(r): i for i, r in enumerate(self.rows)}

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))

    def load_inputs(self, names: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        try:
            at = np.array([self.position[int(r)] for r in np.asarray(rows)], dtype=np.int64)
        except KeyError as exc:
            raise DatasetError(f"{self.path}: row {exc} was not read into memory") from None
        return {n: self.arrays[n][at] for n in dict.fromkeys(names)}


def iter_blocks(dataset: GalaxyDataset | InMemoryInputs, names: Sequence[str],
                rows: np.ndarray, block: int
                ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(rows, arrays) in blocks, so the largest inputs never need two copies in memory."""
    rows = np.asarray(rows)
    names = list(dict.fromkeys(names))
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        if isinstance(dataset, InMemoryInputs):
            yield part, dataset.load_inputs(names, part)
        else:
            yield part, read_rows(dataset.path, names, part)


def raw_input_bytes(path: str | Path, specs: Sequence[InputSpec], n_rows: int) -> int:
    """Bytes the raw (unscaled) inputs of `specs` take for n_rows rows, from the file's dtypes."""
    names = sorted({s for spec in specs for s in spec.sources})
    with h5py.File(path, "r") as f:
        per_row = sum(int(np.prod(f[f"inputs/{n}"].shape[1:])) * f[f"inputs/{n}"].dtype.itemsize
                      for n in names if f"inputs/{n}" in f)
    return int(per_row * n_rows)


def prepare_inputs(dataset: GalaxyDataset, specs: Sequence[InputSpec], train_rows: np.ndarray,
                   rows: np.ndarray, mode: str = "linear", log_floor_rel: float = 1e-6,
                   block: int = 512, dtype: torch.dtype = torch.float32,
                   read_once_bytes: float = 8 * 2**30, progress: bool = False
                   ) -> tuple[dict[str, PixelScaler], dict[str, torch.Tensor], dict]:
    """Scalers fitted on train_rows and the scaled inputs of `rows`, reading the file once.

    When the raw inputs of `rows` need at most read_once_bytes they are read into memory in
    one pass (train_rows must be among rows) and the scaler passes read memory; otherwise the
    file is streamed block by block for each pass. Same results either way. Returns
    (scalers, tensors, info) with info = {read_once, raw_bytes, read_s, fit_s, scale_s}.
    """
    rows = np.asarray(rows)
    raw_bytes = raw_input_bytes(dataset.path, specs, len(rows))
    once = raw_bytes <= read_once_bytes and bool(np.isin(train_rows, rows).all())
    t0 = time.perf_counter()
    source: GalaxyDataset | InMemoryInputs = dataset
    if once:
        names = sorted({s for spec in specs for s in spec.sources})
        source = InMemoryInputs(dataset.path, names, rows)
    t1 = time.perf_counter()
    scalers = fit_scalers(source, specs, train_rows, mode, log_floor_rel, block)
    t2 = time.perf_counter()
    host = load_scaled_inputs(source, specs, scalers, rows, dtype, block, progress)
    t3 = time.perf_counter()
    return scalers, host, {"read_once": once, "raw_bytes": raw_bytes, "read_s": t1 - t0,
                           "fit_s": t2 - t1, "scale_s": t3 - t2}


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


def fit_scalers(dataset: GalaxyDataset | InMemoryInputs, specs: Sequence[InputSpec],
                train_rows: np.ndarray, mode: str = "linear", log_floor_rel: float = 1e-6,
                block: int = 1024
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


def load_scaled_inputs(dataset: GalaxyDataset | InMemoryInputs, specs: Sequence[InputSpec],
                       scalers: dict[str, PixelScaler], rows: np.ndarray,
                       dtype: torch.dtype = torch.float32, block: int = 1024,
                       progress: bool = False) -> dict[str, torch.Tensor]:
    """Scaled (len(rows), channels, N, N) host tensors per branch, rows in the order given."""
    out = {s.name: torch.empty((len(rows), s.channels, s.size, s.size), dtype=dtype)
           for s in specs}
    names = sorted({s for spec in specs for s in spec.sources})
    done = 0
    blocks = iter_blocks(dataset, names, rows, block)
    for part, arrays in tqdm(blocks, total=math.ceil(len(rows) / block), **tqdm_options(progress),
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
