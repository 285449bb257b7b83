"""The probabilistic CNN: a Gaussian head, repeats over seeds, a deep ensemble with split-conformal
recalibration, a conditional normalising flow over (log M*, log M_tot), and the paper's
projection-level split beside ours.

Everything here builds on cnn_train's one-run machinery (`_run_cnn_experiment`) and scores with
the shared calibration module (analysis_lib.models.calibration), so every probabilistic model of
the project is measured by the same code.

Choices, all stated:

- Gaussian head (experiment key `likelihood: gaussian`; the paper's MSE is the default): the
  network outputs, per standardised target, a mean and a log-variance (clamped to
  [LOGVAR_MIN, LOGVAR_MAX] so that one bad batch cannot make the variance 0 or infinite), from
  the float32 head. Loss: the Gaussian negative log-likelihood, optionally the beta-NLL of
  Seitzer et al. (2022) (cnn.nll_beta > 0: each galaxy's NLL weighted by its detached variance
  to the power beta, which stops the network from buying a low loss by inflating the variance of
  hard galaxies instead of fitting their means); the validation loss (which picks the kept
  epoch) is always the plain NLL. The log-variance bias starts at 0 (unit variance in
  standardised units): a warm start that matches the targets' spread, so the first epochs do
  not fight an absurd variance.
- Repeats (cnn.seeds): repeat i of experiment X is the run `X__s{i}` (i >= 1; repeat 0 is `X`
  itself, so runs made before repeats existed stay valid); its initialisation and shuffling
  seeds come from (profile seed, X, i). `seed_summary` gives the mean and spread over repeats.
- Deep ensemble (Lakshminarayanan et al. 2017): cnn.ensemble_members Gaussian-head runs of one
  experiment, differing only in initialisation and shuffling seeds, combined as an equal-weight
  Gaussian mixture. When cnn.ensemble_epochs / cnn.ensemble_image_size make members differ from
  the profile's runs they are stored as kind 'cnn_member' (names as repeats); otherwise the
  members ARE the repeats of kind 'cnn'. The ensemble is stored as kind 'cnn_ensemble', named as
  the experiment.
- Split-conformal recalibration (on the validation galaxies, which never trained the weights
  but did pick the epoch): per target, one factor c stretches the mixture about its mean
  (means m + c (mu_k - m), sigmas c sigma_k) so that the central 68 % interval covers at least
  68.27 % of validation galaxies with the finite-sample guarantee (calibration.conformal_scale).
  Sigma scaling (Laves et al. 2020): one factor c per target maximising the stretched
  mixture's validation log-likelihood. Both are computed and stored; cnn.recalibration picks
  the headline ('sigma_scaling' by default). Why: the conformal guarantee holds on average over
  validation sets, and the quick profile has ~50 validation galaxies; in three quick builds
  with LOGVAR_MAX = 6 (plain NLL, 400 galaxies; beta-NLL, 400; beta-NLL, 360) split conformal
  gave test 68 % coverage of M_tot 0.597, 0.588, 0.551, sigma scaling 0.716, 0.643, 0.644 (M*:
  0.707, 0.635, 0.622 against 0.725, 0.728, 0.647); with LOGVAR_MAX = 2 both were in 0.63-0.73
  (M_tot 0.641 / 0.667, M* 0.673 / 0.724). Chosen after looking, and said so in the book, which
  shows both.
  The 95 % coverage, CRPS and PIT after recalibration are measured, not tuned.
- Conditional normalising flow (zuko NSF): p(log M*, log M_tot | embedding), the embedding
  being the head's input (every branch's pooled features) of the ensemble's first member
  (repeat 0) with its best weights, standardised and reduced by PCA (fitted on the training
  rows) to cnn.flow_context_dims. Trained on the training rows by maximum likelihood,
  early-stopped on the validation rows, seeded. Posterior samples give f_DM = 1 - M*/M_tot and
  M_DM = M_tot - M* (linear, 1e10 Msun, gas included) per galaxy; TARP
  (calibration.tarp_coverage) tests the joint posterior on the test galaxies.
- Projection-level split: `X__projsplit` is X trained and tested on the paper's split by
  projection (same seeds as X), so the two live side by side; `projection_split_flattery`
  gives sigma(galaxy split) / sigma(projection split).
- Augmentation: `X__dihedral` is X trained with random 90-degree turns and flips (same seeds
  and epochs as X); `augmentation_effect` gives sigma(none) / sigma(dihedral).
- The flow's posteriors are recalibrated like the ensemble: one split-conformal stretch per
  quantity about each posterior's median, chosen on the validation galaxies.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis_lib.config import store_label
from analysis_lib.dataset import open_dataset
from analysis_lib.io import progress_note, tqdm_options
from analysis_lib.models import calibration as cal
from analysis_lib.models.cnn_data import CNNExperimentError, TargetScaler
from analysis_lib.models.experiments import select_experiments
from analysis_lib.results import ResultsStore, run_fingerprint

KIND = "cnn"
MEMBER_KIND = "cnn_member"
ENSEMBLE_KIND = "cnn_ensemble"
FLOW_KIND = "cnn_flow"
SEED_SEP = "__s"  # repeat i >= 1 of X is X__s{i}
PROJSPLIT_SUFFIX = "__projsplit"
AUGMENT_SUFFIX = "__dihedral"  # X trained with dihedral augmentation (same seeds as X)
# standardised units: sigma from ~1e-3 to e = 2.7 target stds. The upper bound was 6 (20 stds):
# a quick member put a bright galaxy's log-variance at that clamp in its first epoch (validation
# NLL 6694), where the clamp passes no gradient and beta-NLL's pull on the mean is e^(6 (beta - 1))
# = 5 % of the MSE's, and predicted its mass 3.3 dex off; at 2 the pull stays >= 37 % (beta 0.5),
# and sigma = 2.7 stds already says "knows nothing" (the sample's own spread is 1 std).
LOGVAR_MIN, LOGVAR_MAX = -14.0, 2.0
LEVELS = {"68": (0.15865, 0.84135), "95": (0.025, 0.975)}
NOMINAL_68 = LEVELS["68"][1] - LEVELS["68"][0]
FLOW_TARGETS = ("log_mstar", "log_mtot")
VAL_PREDICTIONS = "val_predictions.csv"
EMBEDDING = "embedding.npz"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
TARP_MIN_GALAXIES = 10  # calibration.tarp_coverage's minimum


# =========================================================================== Gaussian head


def gaussian_nll(out: torch.Tensor, y: torch.Tensor, beta: float = 0.0) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood of standardised targets (beta-NLL when beta > 0).

    `out` is (batch, 2T): T means, then T log-variances; `y` is (batch, T).
    """
    t = y.shape[1]
    if out.shape[1] != 2 * t:
        raise ValueError(f"gaussian head: {out.shape[1]} outputs for {t} targets (need {2 * t})")
    mu, logvar = out[:, :t], out[:, t:].clamp(LOGVAR_MIN, LOGVAR_MAX)
    nll = 0.5 * (logvar + (y - mu) ** 2 * torch.exp(-logvar) + math.log(2 * math.pi))
    if beta > 0:
        nll = nll * torch.exp(logvar).detach() ** beta
    return nll.mean()


def gaussian_losses(data, plan, eval_batch: int, beta: float = 0.0) -> dict:
    """`loss_fn` and `val_loss_fn` for cnn_train.train_model with a Gaussian head."""
    from analysis_lib.models.cnn_train import predict_standardised

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(out, y, beta)

    def val_loss_fn(model: nn.Module, epoch: int) -> float:
        out = predict_standardised(model, data, data.val, plan, eval_batch)
        true = data.targets[data.val.to(data.targets.device)].float().cpu()
        return float(gaussian_nll(out, true, 0.0))

    return {"loss_fn": loss_fn, "val_loss_fn": val_loss_fn}


def destandardise(out: torch.Tensor, tscaler: TargetScaler) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-head outputs (standardised) -> mean and 1-sigma in dex, each (n, T)."""
    t = len(tscaler.names)
    arr = out.numpy().astype(np.float64)
    mu = tscaler.inverse(arr[:, :t])
    sigma = np.exp(0.5 * np.clip(arr[:, t:], LOGVAR_MIN, LOGVAR_MAX)) * tscaler.std
    return mu, sigma


def validation_writer(val_out: torch.Tensor, tscaler: TargetScaler, val_table: pd.DataFrame,
                      targets: Sequence[str]) -> Callable[[Path], None]:
    """Writer of extra/val_predictions.csv (row, ids, true_X, pred_X, pred_sigma_X): the
    validation predictions a deep ensemble needs for split-conformal recalibration."""
    mu, sigma = destandardise(val_out, tscaler)
    table = val_table.reset_index(drop=True)
    frame = table[["row", "galaxy_id", "projection", "galaxy_type"]].copy()
    for j, t in enumerate(targets):
        frame[f"true_{t}"] = table[t].to_numpy()
        frame[f"pred_{t}"] = mu[:, j]
        frame[f"pred_sigma_{t}"] = sigma[:, j]

    def write(extra: Path) -> None:
        frame.to_csv(extra / VAL_PREDICTIONS, index=False)

    return write


def embedding_writer(model, data, plan, eval_batch: int, position: np.ndarray,
                     kept: dict[str, np.ndarray]) -> Callable[[Path], None]:
    """Writer of extra/embedding.npz: the head's input for every train/val/test row (best
    weights), the dataset rows and their split, for the conditional flow."""
    from analysis_lib.models.cnn_train import _autocast, _batch_inputs

    device = next(iter(data.inputs.values())).device
    rows = np.concatenate([kept[k] for k in SPLIT_CODES])
    split = np.concatenate([np.full(len(kept[k]), c, np.int8) for k, c in SPLIT_CODES.items()])
    idx = torch.from_numpy(position[rows]).to(device)
    model.eval()
    feats = []
    with torch.no_grad(), _autocast(plan):
        for part in torch.split(idx, eval_batch):
            feats.append(model.embed(_batch_inputs(data, part, plan)).float().cpu())
    features = torch.cat(feats).numpy().astype(np.float32)

    def write(extra: Path) -> None:
        np.savez_compressed(extra / EMBEDDING, rows=rows, split=split, features=features)

    return write


def _interval_bounds_gaussian(mu, sigma):
    from scipy import stats

    out = {}
    for key, (lo, hi) in LEVELS.items():
        out[key] = (mu + stats.norm.ppf(lo) * sigma, mu + stats.norm.ppf(hi) * sigma)
    return out


def _headline(per_target: dict[str, dict]) -> dict:
    """Top-level coverage_68, coverage_95 and crps: means over the targets."""
    keys = ("coverage_68", "coverage_95", "crps")
    return {k: float(np.mean([b[k] for b in per_target.values()])) for k in keys}


def gaussian_calibration(mu: np.ndarray, sigma: np.ndarray, table: pd.DataFrame,
                         targets: Sequence[str]) -> dict:
    """Calibration of per-galaxy Gaussians on the test rows: per target and overall.

    Returns {"calibration": {X: calibration_summary + mean_sigma}, "coverage_68", "coverage_95",
    "crps"} (the last three averaged over targets).
    """
    per = {}
    for j, t in enumerate(targets):
        y = table[t].to_numpy(dtype=float)
        b = _interval_bounds_gaussian(mu[:, j], sigma[:, j])
        per[t] = cal.calibration_summary(*b["68"], *b["95"],
                                         cal.crps_gaussian(mu[:, j], sigma[:, j], y),
                                         cal.gaussian_pit(mu[:, j], sigma[:, j], y), y)
        per[t]["mean_sigma"] = float(np.mean(sigma[:, j]))
    return {"calibration": per, **_headline(per)}


# =========================================================================== repeats and names


def seed_run_name(name: str, seed_index: int) -> str:
    """The store name of repeat `seed_index` of experiment `name` (0 keeps the plain name)."""
    return name if int(seed_index) == 0 else f"{name}{SEED_SEP}{int(seed_index)}"


def seeded_experiment(experiment: dict, seed_index: int) -> dict:
    """Repeat `seed_index` of an experiment: same settings, its own initialisation and shuffling.

    Index 0 returns the experiment unchanged (same name, same fingerprint as before repeats).
    """
    if int(seed_index) == 0:
        return experiment
    base = experiment.get("base", experiment["name"])
    return {**experiment, "name": seed_run_name(experiment["name"], seed_index), "base": base,
            "seed_index": int(seed_index)}


def projsplit_experiment(experiment: dict) -> dict:
    """The experiment on the paper's leaky projection-level split (same seeds as the original)."""
    return {**experiment, "name": f"{experiment['name']}{PROJSPLIT_SUFFIX}",
            "base": experiment.get("base", experiment["name"]), "split_by": "projection"}


def _n_seeds(cfg: dict) -> int:
    return max(1, int(cfg["cnn"].get("seeds", 1)))


def _run_locked(cfg, dataset_path, experiment, store, force, progress, kind=KIND) -> Path:
    from analysis_lib.models import cnn_train as ct

    with store.lock(kind, experiment["name"], store_label(cfg)):
        return ct._run_cnn_experiment(cfg, dataset_path, experiment, store, force, progress,
                                      kind=kind)


def run_cnn_seeds(cfg: dict, dataset_path: str | Path, selection: str | list[str],
                  store: ResultsStore | None = None, force: bool = False,
                  progress: bool = True) -> list[Path]:
    """Every repeat (cnn.seeds of them) of the selected experiments; repeat 0 is the plain run."""
    store = store or ResultsStore()
    paths = []
    for experiment in select_experiments(KIND, selection):
        for i in range(_n_seeds(cfg)):
            progress_note(f"[cnn seeds] {seed_run_name(experiment['name'], i)}", progress)
            paths.append(_run_locked(cfg, dataset_path, seeded_experiment(experiment, i), store,
                                     force, progress))
    return paths


def seed_runs(store: ResultsStore, profile: str, name: str, kind: str = KIND) -> list[str]:
    """Names of the stored repeats of experiment `name` (X, X__s1, X__s2, ...), by index."""
    runs = store.list_runs(kind, profile)
    pattern = re.compile(rf"^{re.escape(name)}(?:{SEED_SEP}(\d+))?$")
    found = []
    for n in runs["name"]:
        m = pattern.match(n)
        if m:
            found.append((int(m.group(1) or 0), n))
    return [n for _, n in sorted(found)]


def seed_summary(store: ResultsStore, profile: str, name: str, kind: str = KIND
                 ) -> pd.DataFrame:
    """Mean and spread (standard deviation, ddof=1) over repeats of each quantity's sigma and bias.

    One row per target and derived quantity of experiment `name`, for all galaxies: n_seeds,
    sigma_mean, sigma_std, bias_mean, bias_std, and (Gaussian heads) coverage_68_mean/std and
    crps_mean/std. With one repeat the spreads are NaN: one seed has no spread.
    """
    names = seed_runs(store, profile, name, kind)
    if not names:
        raise FileNotFoundError(f"no stored {kind} run '{name}' (or repeats) for profile "
                                f"'{profile}' in {store.root}")
    rows: dict[str, dict[str, list[float]]] = {}
    for n in names:
        metrics = _metrics(store, kind, n, profile)
        for group in ("targets", "derived"):
            for q, block in metrics.get(group, {}).items():
                r = rows.setdefault(q, {"sigma": [], "bias": [], "coverage_68": [], "crps": []})
                r["sigma"].append(block["all"]["sigma"])
                r["bias"].append(block["all"]["bias"])
                calib = metrics.get("calibration", {}).get(q)
                if calib:
                    r["coverage_68"].append(calib["coverage_68"])
                    r["crps"].append(calib["crps"])
    out = []
    for q, r in rows.items():
        row = {"quantity": q, "n_seeds": len(r["sigma"])}
        for k, v in r.items():
            if v:
                row[f"{k}_mean"] = float(np.mean(v))
                row[f"{k}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
        out.append(row)
    frame = pd.DataFrame(out)
    frame.attrs["runs"] = names
    return frame


# =========================================================================== deep ensemble


def ensemble_config(cfg: dict) -> dict:
    """The configuration of the ensemble's members: the profile's, with cnn.ensemble_epochs and
    cnn.ensemble_image_size (when set) as cnn.epochs and cnn.image_size."""
    out = copy.deepcopy(cfg)
    cnn = out["cnn"]
    if cnn.get("ensemble_epochs"):
        cnn["epochs"] = int(cnn["ensemble_epochs"])
    if cnn.get("ensemble_image_size"):
        cnn["image_size"] = int(cnn["ensemble_image_size"])
    return out


def member_kind(cfg: dict) -> str:
    """'cnn' when members are the profile's own repeats, else 'cnn_member'."""
    ecfg = ensemble_config(cfg)
    same = all(ecfg["cnn"][k] == cfg["cnn"][k] for k in ("epochs", "image_size"))
    return KIND if same else MEMBER_KIND


def _require_gaussian(experiment: dict, what: str) -> None:
    if experiment.get("likelihood", "mse") != "gaussian":
        raise CNNExperimentError(f"experiment '{experiment['name']}': {what} needs "
                                 "`likelihood: gaussian` (the MSE head predicts no sigma)")


def _load_member(store: ResultsStore, kind: str, name: str, profile: str
                 ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    d = store.run_dir(kind, name, profile)
    val_path = d / "extra" / VAL_PREDICTIONS
    if not val_path.exists():
        raise CNNExperimentError(f"{d}: member has no {VAL_PREDICTIONS} (rerun it with force)")
    return (pd.read_csv(d / "predictions.csv"), pd.read_csv(val_path),
            json.loads((d / "meta.json").read_text()))


def _stack(frames: list[pd.DataFrame], targets: Sequence[str]) -> tuple[np.ndarray, ...]:
    """mus, sigmas (members, n, T) and truths (n, T) of members aligned on the dataset row."""
    rows = frames[0]["row"].to_numpy()
    for f in frames[1:]:
        if not np.array_equal(f["row"].to_numpy(), rows):
            raise CNNExperimentError("ensemble members were evaluated on different rows (a "
                                     "different split or dataset); rerun them")
    mus = np.stack([f[[f"pred_{t}" for t in targets]].to_numpy(float) for f in frames])
    sigmas = np.stack([f[[f"pred_sigma_{t}" for t in targets]].to_numpy(float) for f in frames])
    truths = frames[0][[f"true_{t}" for t in targets]].to_numpy(float)
    return mus, sigmas, truths


def mixture_moments(mus: np.ndarray, sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of equal-weight Gaussian mixtures (members on axis 0)."""
    mean = mus.mean(axis=0)
    var = (sigmas**2 + mus**2).mean(axis=0) - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def mixture_calibration(mus: np.ndarray, sigmas: np.ndarray, y: np.ndarray) -> dict:
    """calibration_summary of equal-weight mixtures (mus, sigmas: (members, n)) at truths y."""
    q = cal.mixture_quantiles(mus, sigmas, [*LEVELS["68"], *LEVELS["95"]])
    out = cal.calibration_summary(q[0], q[1], q[2], q[3], cal.crps_mixture(mus, sigmas, y),
                                  cal.mixture_pit(mus, sigmas, y), y)
    out["mean_sigma"] = float(np.mean(mixture_moments(mus, sigmas)[1]))
    out["mean_width_68"] = float(np.mean(q[1] - q[0]))
    return out


def conformal_factor(mus: np.ndarray, sigmas: np.ndarray, y: np.ndarray,
                     level: float = NOMINAL_68) -> float:
    """The stretch c of mixtures about their means giving central-`level` intervals conformal
    coverage on these (validation) galaxies.

    Galaxy i's score is the smallest c whose stretched interval [m + c (q_lo - m), m + c
    (q_hi - m)] contains y_i; c is the finite-sample conformal quantile of the scores
    (calibration.conformal_scale): >1 widens an over-confident ensemble, <1 narrows an
    under-confident one.
    """
    p_lo, p_hi = 0.5 - level / 2, 0.5 + level / 2
    q_lo, q_hi = cal.mixture_quantiles(mus, sigmas, [p_lo, p_hi])
    m = mus.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(y >= m, (y - m) / (q_hi - m), (m - y) / (m - q_lo))
    return cal.conformal_scale(score, level)


def sigma_scaling_factor(mus: np.ndarray, sigmas: np.ndarray, y: np.ndarray) -> float:
    """The stretch c of mixtures about their means that maximises their log-likelihood on these
    (validation) galaxies: sigma scaling (Laves et al. 2020, MIDL; Guo et al. 2017's
    temperature scaling for regression).

    Unlike the conformal factor, which rests on the count of galaxies beyond one quantile, c
    uses every residual; it promises no finite-sample coverage, and it is not always the steadier
    of the two (quick profile, a bootstrap over ~50 validation galaxies: the test 68 % coverage
    moved by +-0.04 against +-0.06 for the conformal factor in one build, by +-0.07 for both in
    the next). Searched over c in [e^-3, e^3] (bounded Brent in log c).
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    mus, sigmas, y = (np.asarray(a, dtype=float) for a in (mus, sigmas, y))
    keep = np.isfinite(y) & np.all(np.isfinite(mus) & np.isfinite(sigmas), axis=0)
    if not keep.any():
        raise ValueError("sigma_scaling_factor needs at least one finite validation galaxy")
    mus, sigmas, y = mus[:, keep], sigmas[:, keep], y[keep]
    m = mus.mean(axis=0)

    def nll(log_c: float) -> float:
        c = math.exp(log_c)
        sd = c * sigmas
        z = (y - (m + c * (mus - m))) / sd
        logp = -0.5 * z**2 - np.log(sd) - 0.5 * math.log(2 * math.pi)
        return -float(np.mean(logsumexp(logp, axis=0) - math.log(len(mus))))

    res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded",
                          options={"xatol": 1e-5})
    return float(math.exp(res.x))


RECALIBRATIONS = ("sigma_scaling", "conformal")


def stretch(mus: np.ndarray, sigmas: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """The mixture stretched by c about its mean (every quantile moves c times further)."""
    m = mus.mean(axis=0)
    return m + c * (mus - m), c * sigmas


def run_cnn_ensemble(cfg: dict, dataset_path: str | Path, experiment: dict | str,
                     store: ResultsStore | None = None, force: bool = False,
                     progress: bool = True) -> Path:
    """Train (or reuse) the members of a Gaussian-head experiment and store their ensemble.

    The ensemble entry (kind 'cnn_ensemble', named as the experiment) holds the mixture's mean
    and 1-sigma per test galaxy (pred_X, pred_sigma_X after recalibration, pred_sigma_raw_X
    before), and metrics.json: point metrics of the mixture mean, 'calibration_raw' and
    'calibration' (after the recalibration cnn.recalibration names: 'sigma_scaling', the
    validation log-likelihood's stretch, or 'conformal', split conformal at
    cnn.conformal_level), both recalibrations as 'calibration_sigma_scaling' and
    'calibration_conformal', 'conformal_factor' per target (the chosen stretch 'c' and both,
    'c_sigma_scaling' and 'c_conformal'), the members and their seeds; the top-level
    coverage_68, coverage_95 and crps are after the chosen recalibration, ``*_raw`` before.
    """
    from analysis_lib.models import cnn_train as ct

    store = store or ResultsStore()
    if isinstance(experiment, str):
        experiment = select_experiments(KIND, experiment)[0]
    _require_gaussian(experiment, "a deep ensemble")
    n = int(cfg["cnn"].get("ensemble_members", 5))
    if n < 2:
        raise CNNExperimentError(f"cnn.ensemble_members={n}: an ensemble needs >= 2 members")
    level = float(cfg["cnn"].get("conformal_level", NOMINAL_68))
    method = str(cfg["cnn"].get("recalibration", "sigma_scaling"))
    if method not in RECALIBRATIONS:
        raise CNNExperimentError(f"cnn.recalibration must be one of {RECALIBRATIONS}, not "
                                 f"'{method}'")
    mcfg, kind = ensemble_config(cfg), member_kind(cfg)
    profile, name = store_label(cfg), experiment["name"]
    t0 = time.perf_counter()
    members = [seeded_experiment(experiment, i) for i in range(n)]
    for i, member in enumerate(members):
        progress_note(f"[cnn ensemble {i + 1}/{n}] {kind}/{member['name']}", progress)
        _run_locked(mcfg, dataset_path, member, store, force, progress, kind=kind)
    loaded = [_load_member(store, kind, m["name"], profile) for m in members]
    fingerprint = run_fingerprint(kind=ENSEMBLE_KIND, members=[m[2]["fingerprint"]
                                                               for m in loaded], level=level,
                                  recalibration=method)
    if store.exists(ENSEMBLE_KIND, name, profile, fingerprint) and not force:
        return store.run_dir(ENSEMBLE_KIND, name, profile)
    targets = list(experiment["targets"])
    mus, sigmas, truths = _stack([m[0] for m in loaded], targets)
    vmus, vsigmas, vtruths = _stack([m[1] for m in loaded], targets)

    table = open_dataset(dataset_path).table.copy()
    table["row"] = np.arange(len(table))
    test_table = table.loc[loaded[0][0]["row"].to_numpy()]
    mean, sd_raw = mixture_moments(mus, sigmas)
    raw, factors, sd_after = {}, {}, np.empty_like(sd_raw)
    recal: dict[str, dict] = {m: {} for m in RECALIBRATIONS}
    for j, t in enumerate(targets):
        raw[t] = mixture_calibration(mus[:, :, j], sigmas[:, :, j], truths[:, j])
        c_conf = conformal_factor(vmus[:, :, j], vsigmas[:, :, j], vtruths[:, j], level)
        if not np.isfinite(c_conf):
            raise CNNExperimentError(f"ensemble '{name}': too few validation galaxies "
                                     f"({len(vtruths)}) for a {level:.0%} conformal interval")
        c_by = {"conformal": c_conf,
                "sigma_scaling": sigma_scaling_factor(vmus[:, :, j], vsigmas[:, :, j],
                                                      vtruths[:, j])}
        val_raw = mixture_calibration(vmus[:, :, j], vsigmas[:, :, j], vtruths[:, j])
        factors[t] = {"c": float(c_by[method]), "method": method,
                      **{f"c_{m}": float(c) for m, c in c_by.items()},
                      "val_coverage_68_raw": val_raw["coverage_68"],
                      "n_val": int(len(vtruths))}
        for m, c in c_by.items():
            smus, ssig = stretch(mus[:, :, j], sigmas[:, :, j], c)
            recal[m][t] = mixture_calibration(smus, ssig, truths[:, j])
        sd_after[:, j] = c_by[method] * sd_raw[:, j]
    after = recal[method]
    predictions, metrics = ct.evaluate(mean, test_table, experiment, sd_after)
    for j, t in enumerate(targets):
        predictions[f"pred_sigma_raw_{t}"] = sd_raw[:, j]
    # evaluate scored single Gaussians of the mixture's moments; the mixture's own numbers win
    metrics["calibration_gaussian_moments"] = metrics.pop("calibration")
    metrics.update({"calibration_raw": raw, "calibration": after, "conformal_factor": factors,
                    "recalibration": method,
                    **{f"calibration_{m}": recal[m] for m in RECALIBRATIONS},
                    "conformal_level": level, **_headline(after),
                    **{f"{k}_raw": v for k, v in _headline(raw).items()},
                    "members": [m["name"] for m in members], "member_kind": kind,
                    "seeds": [m[2].get("seeds") for m in loaded], "n_members": n})
    meta = {"members": [str(store.run_dir(kind, m["name"], profile)) for m in members],
            "member_epochs": int(mcfg["cnn"]["epochs"]),
            "member_image_size": int(mcfg["cnn"]["image_size"]),
            "member_wall_s": [m[2].get("timings", {}).get("wall_s") for m in loaded],
            "dataset": str(dataset_path), "data_source": loaded[0][2].get("data_source"),
            "split_by": loaded[0][2].get("split_by"),
            "timings": {"wall_s_this_call": time.perf_counter() - t0}}
    return store.save(ENSEMBLE_KIND, name, profile,
                      config={**copy.deepcopy(cfg), "experiment": experiment,
                              "member_cnn": mcfg["cnn"]},
                      metrics=metrics, predictions=predictions, meta=meta,
                      fingerprint=fingerprint)


# =========================================================================== conditional flow


def _flow_settings(cnn: dict) -> dict:
    return {"context_dims": int(cnn.get("flow_context_dims", 32)),
            "transforms": int(cnn.get("flow_transforms", 3)),
            "hidden": int(cnn.get("flow_hidden", 64)),
            "epochs": int(cnn.get("flow_epochs", 300)),
            "patience": int(cnn.get("flow_patience", 30)),
            "lr": float(cnn.get("flow_lr", 1e-3)),
            "batch_size": int(cnn.get("flow_batch_size", 128)),
            "samples": int(cnn.get("flow_samples", 1000)),
            "keep_samples": int(cnn.get("flow_keep_samples", 200))}


def flow_context(features: np.ndarray, train: np.ndarray, dims: int
                 ) -> tuple[np.ndarray, dict]:
    """Embedding -> flow context: standardised with the training rows, then PCA (fitted on the
    training rows) to `dims` components, themselves standardised. 1536 features for ~10^3
    training galaxies would let the flow memorise them; the leading components keep most of
    the variance (the fraction is returned)."""
    from sklearn.decomposition import PCA

    mean, std = features[train].mean(axis=0), features[train].std(axis=0)
    keep = std > 1e-8 * max(float(std.max()), 1e-30)  # dead ReLU features carry nothing
    z = (features[:, keep] - mean[keep]) / std[keep]
    dims = int(min(dims, keep.sum(), int(train.sum()) - 1))
    pca = PCA(n_components=dims, random_state=0).fit(z[train])
    c = pca.transform(z)
    cmean, cstd = c[train].mean(axis=0), c[train].std(axis=0)
    c = (c - cmean) / np.where(cstd > 0, cstd, 1.0)
    return c.astype(np.float32), {"dims": dims, "n_features_used": int(keep.sum()),
                                  "explained_variance": float(pca.explained_variance_ratio_
                                                              .sum())}


def train_flow(context: np.ndarray, theta: np.ndarray, split: np.ndarray, settings: dict,
               seed: int, progress: bool = False):
    """A zuko NSF p(theta | context) trained on split==0, early-stopped on split==1.

    Returns the flow with the weights of the lowest validation NLL, and its history.
    """
    import zuko

    torch.manual_seed(seed)
    flow = zuko.flows.NSF(features=theta.shape[1], context=context.shape[1],
                          transforms=settings["transforms"],
                          hidden_features=(settings["hidden"], settings["hidden"]))
    opt = torch.optim.Adam(flow.parameters(), lr=settings["lr"])
    c, x = torch.from_numpy(context), torch.from_numpy(theta.astype(np.float32))
    tr, va = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch, history = math.inf, None, 0, []
    bar = tqdm(range(1, settings["epochs"] + 1), desc="flow", leave=False,
               **tqdm_options(progress))
    for epoch in bar:
        flow.train()
        order = torch.from_numpy(tr)[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for idx in torch.split(order, settings["batch_size"]):
            loss = -flow(c[idx]).log_prob(x[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        flow.eval()
        with torch.no_grad():
            val = float(-flow(c[va]).log_prob(x[va]).mean())
        history.append({"epoch": epoch, "train_loss": total / len(tr), "val_loss": val})
        if val < best:
            best, best_epoch = val, epoch
            best_state = copy.deepcopy(flow.state_dict())
        elif epoch - best_epoch >= settings["patience"]:
            break
    flow.load_state_dict(best_state)
    flow.eval()
    return flow, pd.DataFrame(history), best_epoch


def sample_flow(flow, context: np.ndarray, n_samples: int, seed: int, chunk: int = 256
                ) -> np.ndarray:
    """(n_samples, n, dims) posterior samples for each context row (seeded)."""
    torch.manual_seed(seed)
    out = []
    with torch.no_grad():
        for part in torch.split(torch.from_numpy(context), chunk):
            out.append(flow(part).sample((n_samples,)).numpy())
    return np.concatenate(out, axis=1)


def samples_conformal_factor(samples: np.ndarray, y: np.ndarray,
                             level: float = NOMINAL_68) -> float:
    """The stretch c of posterior samples (n_samples, n) about their medians that gives the
    central-`level` intervals conformal coverage on these (validation) galaxies.

    Galaxy i's score is the smallest c whose stretched interval [med + c (q_lo - med), med +
    c (q_hi - med)] contains y_i; c is the finite-sample conformal quantile of the scores
    (calibration.conformal_scale), as `conformal_factor` does for the ensemble's mixtures: > 1
    widens an over-confident flow, < 1 narrows an under-confident one. A flow early-stopped on
    its validation NLL can still be too sharp on new galaxies; this is the cheapest repair that
    keeps each posterior's shape (and the joint's correlation).
    """
    p_lo, p_hi = 0.5 - level / 2, 0.5 + level / 2
    q_lo, med, q_hi = np.quantile(samples, [p_lo, 0.5, p_hi], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(y >= med, (y - med) / (q_hi - med), (med - y) / (med - q_lo))
    return cal.conformal_scale(score, level)


def flow_point_predictions(samples: np.ndarray, test_table: pd.DataFrame, experiment: dict
                           ) -> tuple[pd.DataFrame, dict]:
    """Predictions and point metrics of posterior samples (n_samples, n, d): the per-galaxy
    median as pred_X and half the central 68 % interval as pred_sigma_X (dex).

    Why not as Gaussians: the calibration of a flow is that of its samples (the caller adds
    it); a flow can also put an out-of-distribution galaxy on a near-delta posterior (seen in
    the smoke profile: a 68 % half-width of 0 in float32), which has no Gaussian CRPS, and
    such a galaxy must stay in the table, not stop the run.
    """
    from analysis_lib.models import cnn_train as ct

    median = np.median(samples, axis=0)
    half68 = 0.5 * np.diff(np.quantile(samples, LEVELS["68"], axis=0), axis=0)[0]
    predictions, metrics = ct.evaluate(median, test_table, experiment)
    for j, t in enumerate(experiment["targets"]):
        predictions.insert(predictions.columns.get_loc(f"pred_{t}") + 1, f"pred_sigma_{t}",
                           half68[:, j])
    return predictions, metrics


def stretch_samples(samples: np.ndarray, factors: Sequence[float]) -> np.ndarray:
    """Samples (n_samples, n, d) stretched about each galaxy's per-dimension median by factors[d]
    (every marginal quantile moves c times further from the median; the median stays)."""
    med = np.median(samples, axis=0, keepdims=True)
    return med + np.asarray(factors, dtype=float) * (samples - med)


def _samples_calibration(samples: np.ndarray, y: np.ndarray) -> dict:
    """calibration_summary from posterior samples (n_samples, n) of one quantity."""
    q = np.quantile(samples, [*LEVELS["68"], *LEVELS["95"]], axis=0)
    out = cal.calibration_summary(q[0], q[1], q[2], q[3], cal.crps_samples(samples, y),
                                  cal.samples_pit(samples, y), y)
    out["mean_width_68"] = float(np.mean(q[1] - q[0]))
    return out


def _tarp_block(samples: np.ndarray, truths: np.ndarray, seed: int) -> dict:
    """TARP of joint samples (n_samples, n, d) at truths (n, d), or a note when too few."""
    block: dict = {"n": int(len(truths))}
    if len(truths) < TARP_MIN_GALAXIES:  # the smoke dataset: too few for a coverage curve
        block["note"] = f"not computed: fewer than {TARP_MIN_GALAXIES} test samples"
        return block
    tarp = cal.tarp_coverage(samples, truths, seed=seed % (2**32))
    block.update(atc=tarp["atc"], ks_stat=tarp["ks_stat"], ks_pvalue=tarp["ks_pvalue"],
                 alpha=np.asarray(tarp["alpha"]).tolist(), ecp=np.asarray(tarp["ecp"]).tolist())
    return block


def run_cnn_flow(cfg: dict, dataset_path: str | Path, experiment: dict | str,
                 store: ResultsStore | None = None, force: bool = False,
                 progress: bool = True) -> Path:
    """A conditional normalising flow over (log M*, log M_tot) on a trained CNN's embedding.

    Trains (or reuses) the network of the ensemble's first member (the experiment's repeat 0 at
    the ensemble's epochs and image size, kind 'cnn' or 'cnn_member'; it keeps
    extra/embedding.npz when the experiment says `flow: true`), fits the flow, samples the test
    galaxies' posteriors and stores kind 'cnn_flow' named as the experiment: predictions with
    posterior medians and 16/84 % bounds of log M*, log M_tot, f_DM = 1 - M*/M_tot and M_DM;
    metrics with point metrics of the medians, calibration per quantity, TARP of the joint
    (log M*, log M_tot) posterior ('tarp': atc, ks, the ECP curve), and the coverage of the
    f_DM intervals.

    The posteriors are recalibrated by split conformal (`samples_conformal_factor`): each
    marginal is stretched about its median by one factor per quantity chosen on the
    validation galaxies (cnn.conformal_level); predictions, 'calibration', 'tarp' and the
    top-level coverage_68/95, crps are after it, 'calibration_raw', 'tarp_raw' and ``*_raw``
    before, 'conformal_factor' holds the factors.
    """
    from analysis_lib.models import cnn_train as ct

    store = store or ResultsStore()
    if isinstance(experiment, str):
        experiment = select_experiments(KIND, experiment)[0]
    name, profile = experiment["name"], store_label(cfg)
    if not experiment.get("flow"):
        raise CNNExperimentError(f"experiment '{name}': a flow needs `flow: true` (the run must "
                                 "keep its embedding)")
    missing = [t for t in FLOW_TARGETS if t not in experiment["targets"]]
    if missing:
        raise CNNExperimentError(f"experiment '{name}': the flow needs targets {missing}")
    settings = _flow_settings(cfg["cnn"])
    level = float(cfg["cnn"].get("conformal_level", NOMINAL_68))
    t0 = time.perf_counter()
    # the network of the ensemble's first member (the plain run when members are repeats)
    mcfg, kind = ensemble_config(cfg), member_kind(cfg)
    _run_locked(mcfg, dataset_path, experiment, store, False, progress, kind=kind)
    src = store.run_dir(kind, name, profile)
    src_meta = json.loads((src / "meta.json").read_text())
    seed = ct.experiment_seed(cfg, name, "flow")
    fingerprint = run_fingerprint(kind=FLOW_KIND, source=src_meta["fingerprint"],
                                  settings=settings, seed=seed, level=level)
    if store.exists(FLOW_KIND, name, profile, fingerprint) and not force:
        return store.run_dir(FLOW_KIND, name, profile)
    emb_path = src / "extra" / EMBEDDING
    if not emb_path.exists():
        raise CNNExperimentError(f"{src}: no extra/{EMBEDDING}; rerun the CNN run with force")
    emb = np.load(emb_path)
    rows, split, features = emb["rows"], emb["split"], emb["features"]
    table = open_dataset(dataset_path).table.copy()
    table["row"] = np.arange(len(table))
    theta = table.loc[rows, list(FLOW_TARGETS)].to_numpy(float)
    tmean, tstd = theta[split == 0].mean(axis=0), theta[split == 0].std(axis=0)
    context, ctx_info = flow_context(features, split == 0, settings["context_dims"])
    flow, history, best_epoch = train_flow(context, (theta - tmean) / tstd, split, settings,
                                           seed, progress)
    # the validation galaxies both early-stop the flow (one choice: the epoch) and set the
    # conformal stretch; halving them (measured on quick data) left the epoch unchanged and
    # doubled the noise of the factor
    test, val = split == 2, split == 1
    raw = sample_flow(flow, context[test], settings["samples"], seed + 1) * tstd + tmean
    truths = theta[test]
    test_table = table.loc[rows[test]].reset_index(drop=True)
    # split-conformal stretch per quantity, chosen on the validation galaxies' posteriors
    val_samples = sample_flow(flow, context[val], settings["samples"], seed + 2) * tstd + tmean
    factors = {t: samples_conformal_factor(val_samples[..., j], theta[val][:, j], level)
               for j, t in enumerate(FLOW_TARGETS)}
    if not all(np.isfinite(list(factors.values()))):
        raise CNNExperimentError(f"flow '{name}': too few validation galaxies "
                                 f"({int(val.sum())}) for a {level:.0%} conformal interval")
    samples = stretch_samples(raw, [factors[t] for t in FLOW_TARGETS])
    calib_raw = {t: _samples_calibration(raw[..., j], truths[:, j])
                 for j, t in enumerate(FLOW_TARGETS)}

    ls, lt = samples[..., 0], samples[..., 1]
    # f_DM and M_DM linear: a posterior sample may have M* > M_tot (f_DM < 0), which has no
    # logarithm; interval coverage is the same in any monotone unit, CRPS is in these units
    fdm = 1.0 - 10.0 ** (ls - lt)
    mdm = (10.0**lt - 10.0**ls) / 1e10
    true_fdm = 1.0 - 10.0 ** (truths[:, 0] - truths[:, 1])
    true_mdm = (10.0 ** truths[:, 1] - 10.0 ** truths[:, 0]) / 1e10
    quantities = {"log_mstar": (ls, truths[:, 0]), "log_mtot": (lt, truths[:, 1]),
                  "fdm": (fdm, true_fdm), "mdm_1e10msun": (mdm, true_mdm)}
    calib = {q: _samples_calibration(s, y) for q, (s, y) in quantities.items()}
    tarp_block, tarp_raw = _tarp_block(samples, truths, seed), _tarp_block(raw, truths, seed)
    fexp = {**experiment, "targets": list(FLOW_TARGETS)}  # the samples' order
    predictions, metrics = flow_point_predictions(samples, test_table, fexp)
    for q, (s, y) in quantities.items():
        lo, hi = np.quantile(s, LEVELS["68"], axis=0)
        if q in FLOW_TARGETS:
            predictions[f"lo68_{q}"], predictions[f"hi68_{q}"] = lo, hi
        else:  # not true_/pred_ pairs: f_DM and M_DM (1e10 Msun, = M_tot - M*, gas included)
            # are linear
            predictions[f"{q}_true"], predictions[f"{q}_median"] = y, np.median(s, axis=0)
            predictions[f"{q}_lo68"], predictions[f"{q}_hi68"] = lo, hi
    metrics.update({"calibration": calib, "calibration_raw": calib_raw,
                    **_headline({q: calib[q] for q in FLOW_TARGETS}),
                    **{f"{k}_raw": v for k, v in _headline(calib_raw).items()},
                    "conformal_factor": {t: {"c": float(c), "n_val": int(val.sum())}
                                         for t, c in factors.items()},
                    "conformal_level": level, "tarp_raw": tarp_raw,
                    "fdm_coverage_68": calib["fdm"]["coverage_68"],
                    "fdm_coverage_95": calib["fdm"]["coverage_95"],
                    "tarp": tarp_block,
                    "flow_best_epoch": best_epoch, "context": ctx_info, "seed": seed,
                    "source_run": str(src)})
    keep = min(settings["keep_samples"], settings["samples"])

    def write_samples(entry: Path) -> None:
        np.savez_compressed(entry / "extra" / "posterior_samples.npz",
                            rows=rows[test], samples=samples[:keep].astype(np.float32),
                            quantities=np.array(FLOW_TARGETS))

    meta = {"source_run": str(src), "dataset": str(dataset_path),
            "data_source": src_meta.get("data_source"), "split_by": src_meta.get("split_by"),
            "flow": settings, "n_rows": {k: int((split == c).sum())
                                         for k, c in SPLIT_CODES.items()},
            "timings": {"wall_s": time.perf_counter() - t0}}
    return store.save(FLOW_KIND, name, profile,
                      config={**copy.deepcopy(cfg), "experiment": experiment, "flow": settings},
                      metrics=metrics, predictions=predictions, history=history, meta=meta,
                      fingerprint=fingerprint, extra=write_samples)


# =========================================================================== projection split


def run_projection_split(cfg: dict, dataset_path: str | Path, selection: str | list[str],
                         store: ResultsStore | None = None, force: bool = False,
                         progress: bool = True) -> list[Path]:
    """Each selected experiment on our galaxy split (its plain run) and on the paper's
    projection split (X__projsplit, same seeds), side by side in the store."""
    store = store or ResultsStore()
    paths = []
    for experiment in select_experiments(KIND, selection):
        paths.append(_run_locked(cfg, dataset_path, experiment, store, force, progress))
        paths.append(_run_locked(cfg, dataset_path, projsplit_experiment(experiment), store,
                                 force, progress))
    return paths


def _metrics(store: ResultsStore, kind: str, name: str, profile: str) -> dict:
    path = store.run_dir(kind, name, profile) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"no complete {kind} run '{name}' for profile '{profile}' "
                                f"({path})")
    return json.loads(path.read_text())


def projection_split_flattery(store: ResultsStore, profile: str, names: Sequence[str]
                              ) -> pd.DataFrame:
    """How much the paper's projection-level split flatters the CNN, per experiment and quantity.

    Columns: experiment, quantity, sigma_galaxy, sigma_projection, flattery = sigma_galaxy /
    sigma_projection (> 1: the leaky split reports a smaller scatter than an honest one),
    bias_galaxy, bias_projection, n_test_galaxy, n_test_projection.
    """
    rows = []
    for name in names:
        honest = _metrics(store, KIND, name, profile)
        leaky = _metrics(store, KIND, f"{name}{PROJSPLIT_SUFFIX}", profile)
        for group in ("targets", "derived"):
            for q, block in honest.get(group, {}).items():
                other = leaky.get(group, {}).get(q)
                if not other:
                    continue
                g, p = block["all"], other["all"]
                rows.append({"experiment": name, "quantity": q, "sigma_galaxy": g["sigma"],
                             "sigma_projection": p["sigma"],
                             "flattery": g["sigma"] / p["sigma"] if p["sigma"] else math.nan,
                             "bias_galaxy": g["bias"], "bias_projection": p["bias"],
                             "n_test_galaxy": g["n"], "n_test_projection": p["n"]})
    return pd.DataFrame(rows)


# =========================================================================== augmentation


def augmented_experiment(experiment: dict) -> dict:
    """The experiment trained with dihedral augmentation (X__dihedral): same seeds as X (its
    `base`), so the pair differs only in the random turns and flips of the training images."""
    return {**experiment, "name": f"{experiment['name']}{AUGMENT_SUFFIX}",
            "base": experiment.get("base", experiment["name"])}


def run_augmentation(cfg: dict, dataset_path: str | Path, selection: str | list[str],
                     store: ResultsStore | None = None, force: bool = False,
                     progress: bool = True) -> list[Path]:
    """Each selected experiment as the profile trains it (its plain run, reused when stored) and
    with cnn.augment=dihedral (X__dihedral), same seeds and epochs, side by side in the store.

    The plain run follows the profile's cnn.augment; asking for the comparison when the profile
    already augments is refused (both runs would be augmented).
    """
    if str(cfg["cnn"].get("augment", "none")) != "none":
        raise CNNExperimentError("cnn.augment_experiments compares augmentation with none, but "
                                 f"the profile sets cnn.augment={cfg['cnn']['augment']}")
    store = store or ResultsStore()
    acfg = copy.deepcopy(cfg)
    acfg["cnn"]["augment"] = "dihedral"
    paths = []
    for experiment in select_experiments(KIND, selection):
        paths.append(_run_locked(cfg, dataset_path, experiment, store, force, progress))
        paths.append(_run_locked(acfg, dataset_path, augmented_experiment(experiment), store,
                                 force, progress))
    return paths


def paired_table(store: ResultsStore, profile: str, names: Sequence[str], suffix: str,
                 labels: tuple[str, str]) -> pd.DataFrame:
    """Scatter and bias of X and of its twin X{suffix} per quantity, and the ratio of scatters.

    Columns: experiment, quantity, sigma_<a>, sigma_<b>, ratio = sigma_<a> / sigma_<b>, bias_<a>,
    bias_<b>, n_test_<a>, n_test_<b>, with (a, b) = labels (X is a, its twin b).
    """
    a, b = labels
    rows = []
    for name in names:
        first = _metrics(store, KIND, name, profile)
        second = _metrics(store, KIND, f"{name}{suffix}", profile)
        for group in ("targets", "derived"):
            for q, block in first.get(group, {}).items():
                other = second.get(group, {}).get(q)
                if not other:
                    continue
                g, p = block["all"], other["all"]
                rows.append({"experiment": name, "quantity": q, f"sigma_{a}": g["sigma"],
                             f"sigma_{b}": p["sigma"],
                             "ratio": g["sigma"] / p["sigma"] if p["sigma"] else math.nan,
                             f"bias_{a}": g["bias"], f"bias_{b}": p["bias"],
                             f"n_test_{a}": g["n"], f"n_test_{b}": p["n"]})
    return pd.DataFrame(rows)


def augmentation_effect(store: ResultsStore, profile: str, names: Sequence[str]
                        ) -> pd.DataFrame:
    """What dihedral augmentation changes, per experiment and quantity: sigma_none,
    sigma_dihedral, ratio = sigma_none / sigma_dihedral (> 1: augmentation helped), biases and
    test sizes (the same galaxies: both runs use the same split and seeds)."""
    return paired_table(store, profile, names, AUGMENT_SUFFIX, ("none", "dihedral"))


# =========================================================================== one entry point


def run_probabilistic(cfg: dict, dataset_path: str | Path, store: ResultsStore | None = None,
                      force: bool = False, progress: bool = True) -> dict[str, list[Path]]:
    """What the profile asks for: cnn.seeds repeats of cnn.seed_experiments, the ensemble and
    flow of each of cnn.probabilistic_experiments, cnn.projsplit_experiments on both splits, and
    cnn.augment_experiments with and without dihedral augmentation.

    Returns the stored runs' directories under 'seeds', 'ensemble', 'flow', 'projsplit' and
    'augment'.
    """
    store = store or ResultsStore()
    cnn = cfg["cnn"]
    out: dict[str, list[Path]] = {"seeds": [], "ensemble": [], "flow": [], "projsplit": [],
                                  "augment": []}
    if _n_seeds(cfg) > 1:
        out["seeds"] = run_cnn_seeds(cfg, dataset_path, cnn.get("seed_experiments", "headline"),
                                     store, force, progress)
    prob = cnn.get("probabilistic_experiments") or []
    for experiment in (select_experiments(KIND, prob) if prob else []):
        out["ensemble"].append(run_cnn_ensemble(cfg, dataset_path, experiment, store, force,
                                                progress))
        if experiment.get("flow"):
            out["flow"].append(run_cnn_flow(cfg, dataset_path, experiment, store, force,
                                            progress))
    proj = cnn.get("projsplit_experiments") or []
    if proj:
        out["projsplit"] = run_projection_split(cfg, dataset_path, proj, store, force, progress)
    aug = cnn.get("augment_experiments") or []
    if aug:
        out["augment"] = run_augmentation(cfg, dataset_path, aug, store, force, progress)
    return out


# =========================================================================== tables and figures


def calibration_table(store: ResultsStore, profile: str, name: str) -> pd.DataFrame:
    """One row per (model, quantity): coverage_68, coverage_95, crps, mean 68 % width (dex).

    Models: the repeat-0 Gaussian head ('gaussian head': kind 'cnn', else the ensemble's first
    member); the deep ensemble before ('raw') and after each recalibration on the validation
    galaxies ('sigma scaling', 'conformal'; the one cnn.recalibration chose is marked '*' and
    is the ensemble's headline); the conditional flow before and after its split-conformal
    stretch; whichever are stored.
    """
    rows = []

    def add(model: str, blocks: dict) -> None:
        for q, b in blocks.items():
            rows.append({"model": model, "quantity": q, "coverage_68": b["coverage_68"],
                         "coverage_95": b["coverage_95"], "crps": b["crps"],
                         "width_68": b.get("mean_width_68", math.nan), "n": b.get("n")})

    head_kind = next((k for k in (KIND, MEMBER_KIND)  # the plain run, else member 0
                      if (store.run_dir(k, name, profile) / "metrics.json").exists()), KIND)
    sources = [(head_kind, "gaussian head", ("calibration",)),
               (ENSEMBLE_KIND, "ensemble", ("calibration_raw", "calibration_sigma_scaling",
                                            "calibration_conformal", "calibration")),
               (FLOW_KIND, "flow", ("calibration_raw", "calibration"))]
    for kind, label, keys in sources:
        path = store.run_dir(kind, name, profile) / "metrics.json"
        if not path.exists():
            continue
        metrics = json.loads(path.read_text())
        chosen = metrics.get("recalibration", "conformal")
        suffix = {"calibration_raw": " (raw)", "calibration": " (conformal)",
                  **{f"calibration_{m}": f" ({m.replace('_', ' ')}{' *' if m == chosen else ''})"
                     for m in RECALIBRATIONS}}
        if "calibration_conformal" in metrics:  # 'calibration' repeats the chosen one
            keys = tuple(k for k in keys if k != "calibration")
        for key in keys:
            if key not in metrics:  # a flow stored before recalibration existed
                continue
            add(label + (suffix[key] if len(keys) > 1 else ""), metrics[key])
    return pd.DataFrame(rows)


def calibration_figure(store: ResultsStore, profile: str, name: str):
    """PIT histograms of the ensemble before and after its recalibration(s), and the flow's TARP
    expected-coverage curves before/after its conformal stretch (the diagonal = calibrated).
    Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    ens = _metrics(store, ENSEMBLE_KIND, name, profile)
    flow_path = store.run_dir(FLOW_KIND, name, profile) / "metrics.json"
    flow = json.loads(flow_path.read_text()) if flow_path.exists() else None
    targets = list(ens["calibration"])
    fig, axes = plt.subplots(1, len(targets) + 1, figsize=(4.2 * (len(targets) + 1), 3.6))
    for ax, t in zip(axes, targets, strict=False):
        curves = ((("calibration_raw", "raw", "--"), ("calibration_sigma_scaling",
                                                       "sigma scaling", "-"),
                   ("calibration_conformal", "conformal", ":"))
                  if "calibration_conformal" in ens else
                  (("calibration_raw", "raw", "--"), ("calibration", "conformal", "-")))
        for key, label, style in curves:
            hist = np.asarray(ens[key][t]["pit_hist"])
            edges = np.linspace(0, 1, len(hist) + 1)
            ax.stairs(hist * len(hist), edges, linestyle=style,
                      label=f"{label}: 68 % cov. {ens[key][t]['coverage_68']:.2f}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel(f"PIT of {t}")
        ax.set_ylabel("density (1 = calibrated)")
        ax.legend(fontsize="small")
    ax = axes[-1]
    for key, label, style in (("tarp_raw", "flow, raw", "--"), ("tarp", "flow, conformal", "-")):
        block = (flow or {}).get(key, {})
        if "ecp" in block:
            ax.plot(block["alpha"], block["ecp"], linestyle=style,
                    label=f"{label}: ATC {block['atc']:+.3f}, KS p {block['ks_pvalue']:.2g}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="calibrated")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage (TARP)")
    ax.set_title("joint (log M*, log M_tot)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
