# ruff: noqa: E501  (notebook prose and code cells are kept as written)
"""Regenerate the thin book notebooks in notebooks/ (a developer tool; run it, then review the diff).

The notebooks are what users open and papermill runs; this script keeps their structure in one
place. Logic belongs in analysis_lib, never here.
"""
from pathlib import Path

import nbformat as nbf

OUT = Path(__file__).resolve().parent.parent / "notebooks"


def nb(cells, params):
    n = nbf.v4.new_notebook()
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    n.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src in cells:
        if kind == "md":
            out.append(nbf.v4.new_markdown_cell(src.strip()))
        elif kind == "params":
            c = nbf.v4.new_code_cell(src.strip())
            c.metadata["tags"] = ["parameters"]
            out.append(c)
        elif kind == "hide":
            c = nbf.v4.new_code_cell(src.strip())
            c.metadata["tags"] = ["hide-input"]
            out.append(c)
        else:
            out.append(nbf.v4.new_code_cell(src.strip()))
    for i, cell in enumerate(out):  # stable ids keep regenerated notebooks diff-free
        cell.id = f"cell-{i:02d}"
    n.cells = out
    return n


SETUP = '''
from analysis_lib import plots, report, sections
from analysis_lib.build import ensure_dataset
from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset

cfg = load_config(profile, overrides)
dataset_path = ensure_dataset(cfg, dataset or None)
ds = open_dataset(dataset_path)
report.provenance_note(cfg, ds)
'''

COMMON_PARAMS = '''
# Run profile: smoke, quick or paper.
profile = "quick"
# Overrides of profile parameters, e.g. cnn.epochs=30 or split.by=projection.
overrides = []
# Dataset file; empty means data/datasets/SOURCE_PROFILE.h5, built if missing.
dataset = ""
'''

notebooks = {}

notebooks["02_data"] = [
    ("md", """
# 2 The sample and the data

The paper took every TNG100 galaxy at z = 0 with more than 10¹⁰ M☉ of stars inside 30 kpc and a
subhalo below the cluster scale, and projected each along the three box axes. This chapter builds
the same kind of sample from the configured data source — by default the library's mock universe —
and shows what a model will see: images, kinematic maps, targets and summary features.
"""),
    ("params", COMMON_PARAMS + '# Which sample to show as Fig. 1.\nexample_row = 0\n# Mock galaxies generated for the validation against published relations.\nvalidation_galaxies = 300\n'),
    ("hide", SETUP),
    ("md", "## The dataset\n\nOne row per galaxy and projection; arrays in physical units."),
    ("code", "report.dataset_summary(ds)"),
    ("md", """
## An example galaxy (the paper's Fig. 1)

r-band image (dust-attenuated, SPH-smoothed), g − r colour, stellar line-of-sight mean velocity
and velocity dispersion over ±3 R½. Grey pixels of the maps hold no star particle (masked).
"""),
    ("code", "plots.galaxy_panels(report.sample_inputs(ds, example_row), title=report.sample_title(ds, example_row));"),
    ("md", "## The targets\n\nDistributions of the central masses, dark-matter fraction and M*/L, by galaxy type."),
    ("code", "plots.target_distributions(ds.table);"),
    ("md", """
## Is the mock universe realistic?

Only for the mock source. The population is drawn from a halo mass function and the Moster et al.
(2013) stellar-to-halo mass relation; sizes, gas fractions, ages and metallicities follow published
relations with their scatter (`analysis_lib/sources/mock/relations.py` lists every coefficient and
its source). Here the generated galaxies, measured from their particles, are compared with the
relations they should reproduce and with independent ones (Tully-Fisher, sigma-M*, M/L-colour, the
central dark-matter fraction). The offsets and scatters are reported as measured; nothing was tuned
to the paper's results.
"""),
    ("code", '''is_mock = cfg["data"]["source"] == "mock"
validation = sections.mock_validation(cfg, max_galaxies=validation_galaxies) if is_mock else None
validation.relations if validation else "not a mock dataset"'''),
    ("code", '''if validation:
    for fig in validation.figures.values():
        display(fig)'''),
    ("md", """
### The degeneracies the models must break

At fixed r-band luminosity (narrow bins), how much do M*/L, the central dark-matter fraction and the
central total mass still scatter? If they did not, luminosity alone would predict every target.
"""),
    ("code", "validation.degeneracies if validation else None"),
]

notebooks["04_cnn_mstar"] = [
    ("md", """
# 4.1 Stellar mass

The CNN is trained with the stellar mass inside a 3D sphere of R½ as the target, from the r image,
the g and r images, the two kinematic maps, or the r image with both maps (the paper's Table 4,
section 4.1), and at lower image resolutions. A power-law fit of M* on the r luminosity, made on the
same training set, is the baseline the CNN must beat.
"""),
    ("params", COMMON_PARAMS + '''# One custom experiment instead of the section's: inputs such as r_image or r_image+vmaps,
# image pixels (0 means the profile's) and the target.
inputs = ""
resolution = 0
target = "log_mstar"
# Test galaxies embedded in the galaxy browser.
browser_samples = 40
'''),
    ("hide", SETUP),
    ("code", '''experiments = sections.custom_cnn_from_params("4.1", inputs, target, resolution, cfg)
result = sections.run_cnn_section(cfg, dataset_path, "4.1", experiments)
result.show()'''),
    ("code", "for run in result.runs:\n    plots.run_overview(run)"),
    ("md", """
## Explore the test galaxies

Step through test galaxies (buttons, slider or list): their images and maps, and each model's
prediction beside the truth. This works in the static book without a kernel.
"""),
    ("code", "from analysis_lib import interactive\n\ninteractive.galaxy_browser(ds, result.runs, n_samples=browser_samples)"),
    ("md", "## The power-law baseline (the paper's Fig. 6, bottom)"),
    ("code", '''baseline = sections.run_baseline(cfg, dataset_path)
sections.styled_table(sections.baseline_table(baseline, result))'''),
    ("code", "plots.baseline_figure(baseline);"),
]

notebooks["04_cnn_mtot"] = [
    ("md", """
# 4.2 Total mass

The same network trained on the total mass (stars, gas and dark matter) inside a 3D sphere of R½.
"""),
    ("params", COMMON_PARAMS + 'inputs = ""\nresolution = 0\ntarget = "log_mtot"\n'),
    ("hide", SETUP),
    ("code", '''experiments = sections.custom_cnn_from_params("4.2", inputs, target, resolution, cfg)
result = sections.run_cnn_section(cfg, dataset_path, "4.2", experiments)
result.show()'''),
    ("code", "for run in result.runs:\n    plots.run_overview(run)"),
    ("md", "## Explore the runs\n\nPick a run and a target: predicted against true, with bias and scatter beside the paper's."),
    ("code", "from analysis_lib import interactive\n\ninteractive.experiment_explorer(result.runs)"),
]

notebooks["04_cnn_joint"] = [
    ("md", """
# 4.3 Stellar and total mass at once, and the dark-matter fraction

One network with two outputs, M* and M_tot inside R½. The dark-matter fraction is derived from the
two predictions as f_DM = 1 − M*/M_tot (gas ignored, as in the paper) and compared with the true
f_DM of the particles; the early-type subset is scored without retraining.
"""),
    ("params", COMMON_PARAMS),
    ("hide", SETUP),
    ("code", '''result = sections.run_cnn_section(cfg, dataset_path, "4.3")
result.show()'''),
    ("code", "for run in result.runs:\n    plots.run_overview(run)"),
    ("md", "## Explore the runs\n\nPick a run and a target: predicted against true, with bias and scatter beside the paper's."),
    ("code", "from analysis_lib import interactive\n\ninteractive.experiment_explorer(result.runs)"),
]

notebooks["04_cnn_ml"] = [
    ("md", """
# 4.4 Stellar mass-to-light ratio

M*/L_r (projected within R½, dust-attenuated r luminosity) as a direct target, from different
inputs; and M*/L_r derived from a network trained on the projected stellar mass divided by the
measured luminosity.
"""),
    ("params", COMMON_PARAMS + 'inputs = ""\nresolution = 0\ntarget = "log_ml_r"\n'),
    ("hide", SETUP),
    ("code", '''experiments = sections.custom_cnn_from_params("4.4", inputs, target, resolution, cfg)
result = sections.run_cnn_section(cfg, dataset_path, "4.4", experiments)
result.show()'''),
    ("code", "for run in result.runs:\n    plots.run_overview(run)"),
    ("md", "## Explore the runs\n\nPick a run and a target: predicted against true, with bias and scatter beside the paper's."),
    ("code", "from analysis_lib import interactive\n\ninteractive.experiment_explorer(result.runs)"),
]

notebooks["05_gbdt"] = [
    ("md", """
# 5 LightGBM on summary statistics

Gradient-boosted trees on the Table-1 features predict the central masses, fractions and M*/L
(the paper's Table 6). Which features carry the information is read from the gain importance, as in
the paper, and cross-checked with permutation importance on the test set and SHAP values.
"""),
    ("params", COMMON_PARAMS),
    ("hide", SETUP),
    ("md", "## 5.1 Linear correlations (the paper's Fig. 10)"),
    ("code", "plots.correlation_heatmap(sections.correlations(ds));"),
    ("md", "## 5.2 and 5.3 Masses, fractions and M*/L (Table 6)"),
    ("code", '''result = sections.run_gbdt_section(cfg, dataset_path)
result.show()'''),
    ("code", "for run in result.runs:\n    plots.gbdt_overview(run)"),
    ("md", "## Explore the importances\n\nGain, permutation and SHAP importance per target."),
    ("code", "from analysis_lib import interactive\n\ninteractive.importance_explorer(result.runs)"),
    ("code", "interactive.experiment_explorer(result.runs)"),
    ("md", "## Do the importance measures agree?"),
    ("code", "sections.importance_agreement(result)"),
    ("md", "## How much does the paper's projection-level split flatter the scores?"),
    ("code", "sections.leakage_table(cfg, dataset_path)"),
]

notebooks["06_jam"] = [
    ("md", """
# Beyond the paper: Jeans anisotropic models of the same galaxies

The paper compared its CNN with JAM results on *other* samples. Here JAM models (a Multi-Gaussian
Expansion of the r image, an NFW halo, constant anisotropy, fitted to the v_rms map) are fitted to
the very test galaxies the CNN is scored on, and M*, M_tot, f_DM and M*/L are derived exactly as the
CNN's targets.
"""),
    ("params", COMMON_PARAMS),
    ("hide", SETUP),
    ("code", '''jam = sections.run_jam_section(cfg, dataset_path)
print(f"JAM fits: {jam.jam.metrics.get('n_ok', '?')} succeeded, {jam.jam.metrics.get('n_failed', '?')} failed")
jam.summary("all")'''),
    ("md", "Scatter (bias) in dex, early types only and late types only:"),
    ("code", 'display(jam.summary("early"))\ndisplay(jam.summary("late"))'),
    ("code", "plots.method_comparison(jam);"),
    ("md", "## JAM's own predictions against the truth"),
    ("code", "plots.run_overview(jam.jam, max_targets=4);"),
    ("md", """
For reference, the literature the paper quotes: JAM applied to Illustris galaxies with MaNGA-like
data recovered total masses with 11-16 % scatter and stellar masses with about 30 % (Li et al. 2016);
six composite mass models fitted to MaNGA galaxies differ in stellar mass by 0.19 dex on average (Zhu
et al. 2023). The table above is the first comparison on the *same* galaxies as the CNN.
"""),
]

notebooks["07_reproducibility"] = [
    ("md", """
# Appendix: reproducibility and performance

Every number in this book comes from a run recorded in the results store with its resolved
configuration, the machine it ran on and the code version. This appendix gathers the benchmarks and
the cost of building the book.
"""),
    ("params", 'profile = "quick"\noverrides = []\n'),
    ("code", '''from analysis_lib import report
report.environment_table()'''),
    ("code", "report.book_timings(profile)"),
    ("code", "report.benchmark_tables()"),
    ("code", "report.runs_table(profile)"),
]

for name, cells in notebooks.items():
    nbf.write(nb(cells, None), OUT / f"{name}.ipynb")
print("wrote", len(notebooks))
