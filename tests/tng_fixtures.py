"""TNG-format files built from known particles, for the TNG source tests.

`make_truth` draws a small galaxy in PHYSICAL units (kpc about its centre, peculiar km/s relative
to its systemic velocity, Msun, Lsun-defining magnitudes, (km/s)^2 potential) placed near a corner
of the periodic box so that its particles wrap. `write_cutout` and `write_fake_simulation` convert
it to TNG code units the inverse way (ckpc/h comoving box coordinates, 1e10 Msun/h,
km/s / sqrt(a), Potential * a) and write the layouts of a web-API cutout and of a simulation
directory as illustris_python reads it. A reader that gets the conventions right recovers the
truth exactly (to float32 storage precision).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

A = 0.8  # scale factor of the fake snapshot (not 1, so every a-factor is exercised)
H = 0.6774
BOX = 75000.0  # ckpc/h
M_DM_CODE = 5.0e-4  # 1e10 Msun/h
G_KPC = 4.30091e-6  # kpc (km/s)^2 / Msun

UNITS = {  # a_scaling, h_scaling, to_cgs as in TNG files
    "Coordinates": (1.0, -1.0, 3.085678e21),
    "Velocities": (0.5, 0.0, 1.0e5),
    "Masses": (0.0, -1.0, 1.989e43),
    "GFM_InitialMass": (0.0, -1.0, 1.989e43),
    "Potential": (-1.0, 0.0, 1.0e10),
}


def _half_mass_radius(pos, mass):
    r = np.linalg.norm(pos, axis=1)
    order = np.argsort(r)
    cum = np.cumsum(mass[order])
    return float(np.interp(0.5 * cum[-1], cum, r[order]))


def make_truth(seed: int = 0, n_stars: int = 400, n_wind: int = 25, n_gas: int = 150,
               n_dm: int = 600, centre=(74990.0, 5.0, 37500.0),
               v_sys=(120.0, -80.0, 35.0), star_mass: float = 5.0e7,
               young_fraction: float = 0.3) -> dict:
    """A galaxy of known particles (physical units) and where it sits in the box (code units).

    Star 0 sits exactly at the centre and has the lowest potential of all stars; one wind cell
    has an even lower potential, so a reader that forgets to drop winds finds the wrong centre.
    Stellar velocities have zero mass-weighted mean within 2 R_half, so the systemic velocity
    the reader measures is exactly v_sys.
    """
    rng = np.random.default_rng(seed)

    def sphere(n, scale):
        u = rng.normal(size=(n, 3))
        u /= np.linalg.norm(u, axis=1)[:, None]
        r = scale * rng.uniform(0.05, 1.0, n) ** 1.5 * 6
        return u * r[:, None]

    pos = sphere(n_stars, 2.0)
    pos[0] = 0.0
    mass = star_mass * rng.uniform(0.7, 1.3, n_stars)
    vel = rng.normal(0.0, 120.0, (n_stars, 3))
    r_half = _half_mass_radius(pos, mass)
    inside = np.linalg.norm(pos, axis=1) <= 2 * r_half
    vel -= (vel[inside] * mass[inside, None]).sum(0) / mass[inside].sum()
    n_young = int(young_fraction * n_stars)
    a_form = rng.uniform(0.1, 0.6, n_stars)  # old: formed well before the snapshot
    a_form[1:1 + n_young] = rng.uniform(0.78, 0.7999, n_young)  # young stars (< ~0.5 Gyr)
    r = np.linalg.norm(pos, axis=1)
    potential = -G_KPC * 3e10 / np.sqrt(r**2 + 1.0**2)  # Plummer, (km/s)^2
    mags = rng.uniform(-6.0, 2.0, (n_stars, 8))
    stars = dict(pos=pos, vel=vel, mass=mass, initial_mass=mass * 1.3, a_form=a_form,
                 Z=rng.lognormal(np.log(0.02), 0.3, n_stars), mags=mags, potential=potential)
    wind = dict(pos=sphere(n_wind, 5.0), vel=rng.normal(0, 200.0, (n_wind, 3)),
                mass=rng.uniform(1e6, 3e6, n_wind), Z=rng.uniform(0.01, 0.03, n_wind),
                a_form=-rng.uniform(0.0, 0.5, n_wind), mags=np.full((n_wind, 8), -1e30),
                potential=np.full(n_wind, potential.min() - 1e4))
    wind["a_form"][0] = 0.0  # exactly zero also marks a wind cell
    gas = dict(pos=sphere(n_gas, 6.0), vel=rng.normal(0, 80.0, (n_gas, 3)),
               mass=rng.uniform(1e6, 2e7, n_gas), Z=rng.uniform(0.005, 0.03, n_gas),
               sfr=rng.uniform(0.0, 0.01, n_gas))
    # gas state, from its own generator so the draws above stay as they were: every third cell
    # is not star-forming, and the neutral hydrogen fraction spans ionised to neutral
    gas["sfr"][::3] = 0.0
    gas["neutral_h"] = np.random.default_rng([seed, 1]).uniform(0.0, 1.0, n_gas)
    dm = dict(pos=sphere(n_dm, 20.0), vel=rng.normal(0, 150.0, (n_dm, 3)),
              mass=np.full(n_dm, M_DM_CODE * 1e10 / H))
    return dict(stars=stars, wind=wind, gas=gas, dm=dm, bh_mass=np.array([2.0e8]),
                centre=np.asarray(centre, float), v_sys=np.asarray(v_sys, float), a=A, h=H,
                box=BOX)


def _code_pos(truth, pos):
    return np.mod(truth["centre"] + pos * truth["h"] / truth["a"], truth["box"])


def _code_vel(truth, vel):
    return ((vel + truth["v_sys"]) / np.sqrt(truth["a"])).astype(np.float32)


def _code_mass(truth, mass):
    return (mass * truth["h"] / 1e10).astype(np.float32)


def code_arrays(truth: dict) -> dict[str, dict[str, np.ndarray]]:
    """The galaxy in TNG code units, per particle type (what a snapshot or cutout stores)."""
    s, w, g, d = truth["stars"], truth["wind"], truth["gas"], truth["dm"]
    both = {k: np.concatenate([s[k], w[k]]) for k in ("pos", "vel", "mass", "Z", "a_form",
                                                      "mags", "potential")}
    return {
        "PartType4": {
            "Coordinates": _code_pos(truth, both["pos"]),
            "Velocities": _code_vel(truth, both["vel"]),
            "Masses": _code_mass(truth, both["mass"]),
            "GFM_InitialMass": _code_mass(truth, np.concatenate([s["initial_mass"],
                                                                 w["mass"]])),
            "GFM_StellarFormationTime": both["a_form"].astype(np.float32),
            "GFM_Metallicity": both["Z"].astype(np.float32),
            "GFM_StellarPhotometrics": both["mags"].astype(np.float32),
            "Potential": (both["potential"] * truth["a"]).astype(np.float32),
            "ParticleIDs": np.arange(len(both["mass"]), dtype=np.uint64),
        },
        "PartType0": {
            "Coordinates": _code_pos(truth, g["pos"]),
            "Velocities": _code_vel(truth, g["vel"]),
            "Masses": _code_mass(truth, g["mass"]),
            "GFM_Metallicity": g["Z"].astype(np.float32),
            "StarFormationRate": g["sfr"].astype(np.float32),
            "NeutralHydrogenAbundance": g["neutral_h"].astype(np.float32),
        },
        "PartType1": {
            "Coordinates": _code_pos(truth, d["pos"]),
            "Velocities": _code_vel(truth, d["vel"]),
        },
        "PartType5": {
            "Coordinates": _code_pos(truth, np.zeros((1, 3))),
            "Masses": _code_mass(truth, truth["bh_mass"]),
        },
    }


def header_attrs(truth: dict, counts=None) -> dict:
    counts = counts if counts is not None else [0] * 6
    return {"Time": truth["a"], "Redshift": 1 / truth["a"] - 1, "HubbleParam": truth["h"],
            "BoxSize": truth["box"], "MassTable": np.array([0, M_DM_CODE, 0, 0, 0, 0], float),
            "NumPart_ThisFile": np.asarray(counts, np.int64),
            "NumPart_Total": np.asarray(counts, np.uint64), "NumFilesPerSnapshot": 1,
            "Omega0": 0.3089, "OmegaLambda": 0.6911}


def _write_groups(fh, groups, units=True):
    for group, fields in groups.items():
        g = fh.require_group(group)
        for name, arr in fields.items():
            ds = g.create_dataset(name, data=arr)
            if units and name in UNITS:
                for key, val in zip(("a_scaling", "h_scaling", "to_cgs"), UNITS[name],
                                    strict=True):
                    ds.attrs[key] = val


def write_cutout(path: str | Path, truth: dict, drop: tuple[str, ...] = (),
                 drop_header: tuple[str, ...] = (), set_attrs: dict | None = None) -> Path:
    """Write a web-API style cutout (one subhalo's particles, raw box coordinates).

    `drop`: 'PartType0' to drop a group or 'PartType4/Potential' to drop a dataset;
    `drop_header`: header attributes to leave out; `set_attrs`: {'PartType4/Masses':
    {'h_scaling': 0.0}} to overwrite dataset attributes (wrong-units tests).
    """
    groups = code_arrays(truth)
    for item in drop:
        if "/" in item:
            grp, name = item.split("/")
            groups[grp].pop(name)
        else:
            groups.pop(item)
    counts = [len(next(iter(groups[f"PartType{t}"].values()))) if f"PartType{t}" in groups
              else 0 for t in range(6)]
    path = Path(path)
    with h5py.File(path, "w") as fh:
        hdr = fh.create_group("Header")
        for key, val in header_attrs(truth, counts).items():
            if key not in drop_header:
                hdr.attrs[key] = val
        _write_groups(fh, groups)
        for item, attrs in (set_attrs or {}).items():
            fh[item].attrs.update(attrs)
    return path


def write_fake_simulation(root: str | Path, truths: list[dict], flags=None,
                          chunks: int = 1) -> str:
    """A simulation (snapshot, group catalogue, offsets) holding one subhalo per truth.

    Layout as illustris_python expects: <root>/output/groups_099/fof_subhalo_tab_099.N.hdf5,
    <root>/output/snapdir_099/snap_099.N.hdf5 for N < chunks, and
    <root>/postprocessing/offsets/offsets_099.hdf5. With chunks > 1 the particles of each type
    are cut into files at places that do not respect subhalo boundaries (as in TNG, a subhalo can
    straddle two files) and the subhalos are spread over the group-catalogue files. Returns the
    base path (<root>/output). All truths must share a, h and the box.
    """
    root = Path(root)
    base = root / "output"
    (base / "groups_099").mkdir(parents=True)
    (base / "snapdir_099").mkdir()
    (root / "postprocessing" / "offsets").mkdir(parents=True)
    per_sub = [code_arrays(t) for t in truths]
    types = ["PartType0", "PartType1", "PartType4", "PartType5"]
    len_type = np.zeros((len(truths), 6), np.int64)
    mass_type = np.zeros((len(truths), 6))
    for i, (arrs, t) in enumerate(zip(per_sub, truths, strict=True)):
        for grp in types:
            k = int(grp[-1])
            len_type[i, k] = len(arrs[grp]["Coordinates"])
        mass_type[i, 4] = t["stars"]["mass"].sum() * H / 1e10
        mass_type[i, 0] = (t["gas"]["mass"].sum() + t["wind"]["mass"].sum()) * H / 1e10
        mass_type[i, 1] = len(t["dm"]["pos"]) * M_DM_CODE
    offsets = np.vstack([np.zeros((1, 6), np.int64), np.cumsum(len_type, axis=0)[:-1]])
    totals = len_type.sum(axis=0)
    snap = {grp: {name: np.concatenate([a[grp][name] for a in per_sub])
                  for name in per_sub[0][grp]} for grp in types}
    # particle index where each file starts, per type (equal cuts of each type's array)
    file_start = np.zeros((chunks, 6), np.int64)
    for k in range(6):
        file_start[:, k] = [int(c) for c in np.linspace(0, totals[k], chunks + 1)[:-1]]
    for c in range(chunks):
        stop = file_start[c + 1] if c + 1 < chunks else totals
        counts = stop - file_start[c]
        part = {grp: {name: arr[file_start[c, int(grp[-1])]:stop[int(grp[-1])]]
                      for name, arr in fields.items()}
                for grp, fields in snap.items() if counts[int(grp[-1])] > 0}
        with h5py.File(base / "snapdir_099" / f"snap_099.{c}.hdf5", "w") as fh:
            hdr = fh.create_group("Header")
            for key, val in header_attrs(truths[0], counts).items():
                hdr.attrs[key] = val
            hdr.attrs["NumPart_Total"] = np.asarray(totals, np.uint64)
            hdr.attrs["NumFilesPerSnapshot"] = chunks
            _write_groups(fh, part)
    n = len(truths)
    sub_fields = {
        "SubhaloLenType": len_type, "SubhaloMassType": mass_type,
        "SubhaloMass": mass_type.sum(axis=1),
        "SubhaloFlag": np.asarray(flags if flags is not None else [1] * n, np.int32),
        "SubhaloHalfmassRadType": np.array(  # stellar entry, comoving ckpc/h
            [[0, 0, 0, 0, _half_mass_radius(t["stars"]["pos"], t["stars"]["mass"]) * H / A, 0]
             for t in truths]),
        "SubhaloPos": np.array([t["centre"] for t in truths]),
        "SubhaloVel": np.array([t["v_sys"] for t in truths])}
    sub_start = np.array([int(c) for c in np.linspace(0, n, chunks + 1)[:-1]], np.int64)
    for c in range(chunks):
        lo, hi = sub_start[c], (sub_start[c + 1] if c + 1 < chunks else n)
        with h5py.File(base / "groups_099" / f"fof_subhalo_tab_099.{c}.hdf5", "w") as fh:
            hdr = fh.create_group("Header")
            hdr.attrs.update({"Ngroups_Total": n, "Nsubgroups_Total": n,
                              "Ngroups_ThisFile": hi - lo, "Nsubgroups_ThisFile": hi - lo,
                              "NumFiles": chunks, "Time": A, "HubbleParam": H, "BoxSize": BOX})
            if hi > lo:
                sub = fh.create_group("Subhalo")
                for name, arr in sub_fields.items():
                    sub[name] = arr[lo:hi]
                grp = fh.create_group("Group")
                grp["GroupFirstSub"] = np.arange(lo, hi, dtype=np.int32)
    with h5py.File(root / "postprocessing" / "offsets" / "offsets_099.hdf5", "w") as fh:
        fh["FileOffsets/Subhalo"] = sub_start
        fh["FileOffsets/Group"] = sub_start
        fh["FileOffsets/SnapByType"] = file_start
        fh["Subhalo/SnapByType"] = offsets
    return str(base)
