"""TNG unit conventions: cosmic time, photometry, unit attributes, header reading."""

import numpy as np
import pytest

from analysis_lib.particles import GalaxyInputError
from analysis_lib.sources.tng import cosmology, photometry
from analysis_lib.sources.tng.convert import TngHeader, check_units, subhalo_to_galaxy


def test_cosmic_time_matches_astropy():
    astropy_cosmo = pytest.importorskip("astropy.cosmology")
    ref = astropy_cosmo.FlatLambdaCDM(H0=67.74, Om0=0.3089, Tcmb0=0.0)
    a = np.array([0.05, 0.2, 0.5, 0.8, 1.0])
    np.testing.assert_allclose(cosmology.cosmic_time_gyr(a), ref.age(1 / a - 1).value,
                               rtol=1e-6)


def test_cosmic_time_einstein_de_sitter_and_monotonic():
    a = np.linspace(0.01, 1, 50)
    eds = cosmology.cosmic_time_gyr(a, hubble=0.7, omega_m=1.0, omega_l=0.0)
    np.testing.assert_allclose(eds, 2 / 3 * cosmology.hubble_time_gyr(0.7) * a**1.5)
    t = cosmology.cosmic_time_gyr(a)
    assert np.all(np.diff(t) > 0)
    ages = cosmology.stellar_age_gyr(a, 1.0)
    assert ages[-1] == pytest.approx(0.0) and np.all(np.diff(ages) < 0)
    with pytest.raises(ValueError, match="not flat"):
        cosmology.cosmic_time_gyr(0.5, omega_m=0.3, omega_l=0.3)


def test_photometry_columns_and_solar_magnitudes():
    phot = np.zeros((3, 8))
    phot[:, 4] = [5.11, 0.11, 10.11]  # g: 1, 100, 0.01 Lsun
    phot[:, 5] = [4.65, -0.35, 4.65]  # r: 1, 100, 1 Lsun
    phot[:, [0, 1, 2, 3, 6, 7]] = 99.0  # other bands must be ignored
    lum = photometry.band_luminosities(phot)
    np.testing.assert_allclose(lum["g"], [1, 100, 0.01])
    np.testing.assert_allclose(lum["r"], [1, 100, 1])
    np.testing.assert_allclose(photometry.lsun_to_abs_mag(lum["r"], "r"), phot[:, 5])
    with pytest.raises(ValueError, match="8"):
        photometry.band_luminosities(np.zeros((3, 5)))


def test_check_units_accepts_tng_and_refuses_others():
    check_units("f", "PartType4", "Coordinates",
                {"a_scaling": 1.0, "h_scaling": -1.0, "to_cgs": 3.085678e21})
    check_units("f", "PartType4", "Coordinates", {})  # no attributes: nothing to check
    check_units("f", "PartType4", "GFM_Metallicity", {"a_scaling": 7.0})  # not a scaled field
    with pytest.raises(GalaxyInputError, match="f: field 'PartType4/Potential' has a_scaling"):
        check_units("f", "PartType4", "Potential", {"a_scaling": 0.0})
    with pytest.raises(GalaxyInputError, match="to_cgs"):
        check_units("f", "PartType0", "Masses", {"to_cgs": 1.989e33})


def test_header_needs_its_attributes():
    attrs = {"Time": 1.0, "HubbleParam": 0.6774, "MassTable": [0, 5e-4, 0, 0, 0, 0],
             "BoxSize": 75000.0}
    hdr = TngHeader.from_attrs(attrs, "x.hdf5")
    assert hdr.redshift == pytest.approx(0.0) and hdr.mass_table[1] == 5e-4
    with pytest.raises(GalaxyInputError, match="x.hdf5: .*Header/BoxSize"):
        TngHeader.from_attrs({k: v for k, v in attrs.items() if k != "BoxSize"}, "x.hdf5")
    fb = TngHeader.from_attrs({k: v for k, v in attrs.items() if k != "BoxSize"}, "x.hdf5",
                              fallback={"BoxSize": 35000.0})
    assert fb.box_size == 35000.0
    with pytest.raises(GalaxyInputError, match="out of range"):
        TngHeader.from_attrs({**attrs, "Time": 3.0}, "x.hdf5")


def test_dm_without_mass_table_entry():
    hdr = TngHeader(scale_factor=1.0, hubble=0.7, box_size=1e4, mass_table=(0.0,) * 6)
    one = np.zeros((1, 3))
    raw = {"PartType4": {"Coordinates": one, "Velocities": one, "Masses": np.ones(1),
                         "GFM_StellarFormationTime": np.full(1, 0.5),
                         "GFM_Metallicity": np.full(1, 0.01),
                         "GFM_StellarPhotometrics": np.zeros((1, 8)), "Potential": np.zeros(1)},
           "PartType1": {"Coordinates": one}}
    with pytest.raises(GalaxyInputError, match="sub 3: .*Header/MassTable"):
        subhalo_to_galaxy(raw, hdr, 3, origin="sub 3")
    del raw["PartType1"]
    gal = subhalo_to_galaxy(raw, hdr, 3, origin="sub 3")
    assert gal.stars.mass[0] == pytest.approx(1e10 / 0.7)
    raw["PartType4"]["Masses"] = np.ones(2)
    with pytest.raises(GalaxyInputError, match="disagree in length"):
        subhalo_to_galaxy(raw, hdr, 3, origin="sub 3")
