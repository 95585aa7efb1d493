"""Bad input to the substrate constructors and generators gets a clear error naming the argument (issue 28).

Never a raw numpy / library error, never a silent clip or a silently dropped argument.
"""

import math

import numpy as np
import pytest

import substrates as su

SWC = "1 1 0 0 0 4 -1\n2 3 0 0 4 1 1\n3 3 0 0 14 1 2\n"
BOX3 = [10e-6] * 3


# ------------------------------------------------------------------------------------------ myelinated axons
@pytest.mark.parametrize("sd", [-0.1, math.nan, math.inf])
def test_myelin_g_ratio_sd_must_be_finite_and_non_negative(sd):
    with pytest.raises(ValueError, match="g_ratio_sd"):
        su.myelinated_axons(n_axons=4, g_ratio_sd=sd)


@pytest.mark.parametrize("g", [math.nan, 0.0, 1.0, 1.2, -0.5])
def test_myelin_g_ratio_outside_the_unit_interval_is_refused(g):
    with pytest.raises(ValueError, match="g_ratio"):
        su.myelinated_axons(n_axons=4, g_ratio=g)


def test_myelin_g_ratio_sd_with_mass_outside_the_window_is_refused_not_clipped():
    # g_ratio 0.97 lies outside the [0.3, 0.95] window drawn g-ratios are kept in: it used to be clipped to 0.95
    with pytest.raises(ValueError, match="g_ratio"):
        su.myelinated_axons(n_axons=4, g_ratio=0.97, g_ratio_sd=0.0)
    with pytest.raises(ValueError, match="g_ratio_sd"):
        su.myelinated_axons(n_axons=4, g_ratio=0.7, g_ratio_sd=0.3)


def test_myelin_rare_draws_outside_the_window_are_redrawn_with_a_warning():
    with pytest.warns(UserWarning, match="redrew"):
        sub = su.myelinated_axons(n_axons=60, mean_radius=1e-6, g_ratio=0.85, g_ratio_sd=0.06, fvf=0.4, seed=3)
    g = np.asarray(sub.truth["g_ratios"])
    assert np.all((g >= 0.3) & (g <= 0.95)) and not np.any(g == 0.95)  # no pile-up at the bound


@pytest.mark.parametrize("g", [[0.7, math.nan, 0.7, 0.7], [0.7, 1.0, 0.7, 0.7], [0.7] * 3])
def test_myelin_given_g_ratios_outside_the_unit_interval_are_refused(g):
    with pytest.raises(ValueError, match="g_ratios"):
        su.myelinated_axons(radii=[1e-6] * 4, g_ratios=g)


# ------------------------------------------------------------------------------------------ SWC
@pytest.mark.parametrize("field, line", [("x", "2 3 nan 0 4 1 1"), ("y", "2 3 0 inf 4 1 1"),
                                         ("z", "2 3 0 0 -inf 1 1"), ("radius", "2 3 0 0 4 nan 1"),
                                         ("id", "nan 3 0 0 4 1 1")])
def test_read_swc_refuses_non_finite_values_naming_the_line(field, line):
    text = SWC.replace("2 3 0 0 4 1 1", line)
    with pytest.raises(ValueError, match=rf"line 2: .*{field}"):
        su.read_swc(text)
    with pytest.raises(ValueError, match="line 2"):
        su.from_swc(text, resolution=0.4e-6)


def test_read_swc_names_the_file(tmp_path):
    p = tmp_path / "cell.swc"
    p.write_text(SWC.replace("0 0 14", "0 nan 14"))
    with pytest.raises(ValueError, match=r"cell\.swc, line 3"):
        su.read_swc(p)


# ------------------------------------------------------------------------------------------ sphere chains
@pytest.mark.parametrize("kwargs, name", [
    ({"bead_amplitude": 0.3, "bead_wavelength": 0.0}, "bead_wavelength"),
    ({"undulation": 1e-6, "undulation_wavelength": 0.0}, "undulation_wavelength"),
    ({"bead_wavelength": -8e-6}, "bead_wavelength"),
    ({"undulation_wavelength": math.nan}, "undulation_wavelength"),
    ({"undulation": math.nan}, "undulation"),
    ({"length": 0.0}, "length"),
    ({"length": -1e-5}, "length"),
    ({"length": math.nan}, "length"),
])
def test_sphere_chain_axons_names_the_bad_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        su.sphere_chain_axons(n_axons=3, icvf=0.3, seed=1, **kwargs)


def test_sphere_chain_axons_zero_wavelength_without_amplitude_means_none():
    plain = su.sphere_chain_axons(n_axons=3, icvf=0.3, seed=1)
    zero = su.sphere_chain_axons(n_axons=3, icvf=0.3, seed=1, bead_wavelength=0.0, undulation_wavelength=0.0)
    assert np.all(np.isfinite(zero.centers))
    np.testing.assert_array_equal(plain.centers, zero.centers)
    np.testing.assert_array_equal(plain.radii, zero.radii)


# ------------------------------------------------------------------------------------------ relaxivity, permeability
def test_implausible_relaxivity_is_refused():
    with pytest.raises(ValueError, match=r"relaxivity.*1e-8 to 1e-5 m/s"):
        su.sphere(5e-6, relaxivity=8e-3)
    su.sphere(5e-6, relaxivity=4e-3)  # rho a / D = 10 at a = 5 um, D = 2e-9 m^2/s: the diffusion-limited checks


@pytest.mark.parametrize("factory", [lambda v: su.sphere(5e-6, relaxivity=v),
                                     lambda v: su.cylinders([1e-6], [[2e-6, 2e-6]], [8e-6, 8e-6], relaxivity=v)])
@pytest.mark.parametrize("value", ["1e-5 m/s", "1e-5", ["1e-5"]])
def test_relaxivity_as_a_string_is_a_type_error(factory, value):
    with pytest.raises(TypeError, match=r"relaxivity.*number in m/s"):
        factory(value)


@pytest.mark.parametrize("value", ["1e-5 m/s", "1e-5", {"outward": "1e-5", "inward": 0.0}])
def test_permeability_as_a_string_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"permeability.*number in m/s"):
        su.spheres([1e-6], [[2e-6] * 3], BOX3, permeability=value)


# ------------------------------------------------------------------------------------------ clustering
@pytest.mark.parametrize("factory", [
    lambda: su.packed_axons(n_axons=10, icvf=0.4, clustering=2.0),
    lambda: su.pack_cylinders(np.full(10, 1e-6), 0.4, clustering=2.0, arrangement="hexagonal"),
    lambda: su.pack_disks(np.full(10, 1e-6), 0.4, clustering=2.0),
])
def test_clustering_without_the_clustered_arrangement_is_refused(factory):
    with pytest.raises(ValueError, match=r"clustering.*arrangement"):
        factory()


# ------------------------------------------------------------------------------------------ centres
@pytest.mark.parametrize("factory", [
    lambda: su.spheres([1e-6] * 2, [1e-6] * 6, BOX3),
    lambda: su.spheres([1e-6] * 2, np.full((3, 2), 2e-6), BOX3),
    lambda: su.spheres([1e-6] * 2, np.full((2, 3, 1), 2e-6), BOX3),
    lambda: su.sphere_union([[1e-6] * 6], [2e-6] * 2, BOX3),
    lambda: su.sphere_union(np.full((3, 2), 2e-6), [2e-6] * 2, BOX3),
])
def test_centres_that_are_not_p_by_3_are_refused(factory):
    with pytest.raises(ValueError, match=r"centers.*\(P, 3\)"):
        factory()


@pytest.mark.parametrize("centers", [[2e-6] * 4, np.full((2, 3), 2e-6), np.full((1, 4), 2e-6)])
def test_cylinder_centres_that_are_not_p_by_2_are_refused(centers):
    with pytest.raises(ValueError, match=r"centers.*\(P, 2\)"):
        su.cylinders([1e-6] * 2, centers, [8e-6, 8e-6])


def test_one_centre_as_a_flat_vector_still_works():
    assert len(su.spheres([1e-6], [2e-6] * 3, BOX3).radii) == 1
    assert len(su.cylinders([1e-6], [2e-6] * 2, [8e-6, 8e-6]).radii) == 1


# ------------------------------------------------------------------------------------------ pack_disks message
def test_pack_disks_failure_reports_the_fraction_asked_for():
    with pytest.raises(ValueError) as info:
        su.pack_disks(np.full(20, 1e-6), 0.5, min_gap=2e-6)
    msg = str(info.value)
    assert "0.5" in msg and "6.125" not in msg and "min_gap" in msg


# ------------------------------------------------------------------------------------------ the whole class
NAN, INF = math.nan, math.inf
CASES = [
    # packed axons
    (su.packed_axons, {"n_axons": 8, "icvf": 0.4, "as_mesh": True, "length": 0.0}, "length"),
    (su.packed_axons, {"n_axons": 8, "icvf": 0.4, "as_mesh": True, "length": NAN}, "length"),
    (su.packed_axons, {"n_axons": 8, "icvf": 0.4, "dispersion": 0.2, "length": -1e-5}, "length"),
    (su.packed_axons, {"n_axons": 8, "icvf": 0.4, "shape": NAN}, "shape"),
    (su.packed_axons, {"n_axons": 8, "icvf": 0.4, "dispersion": NAN}, "dispersion"),
    # myelinated axons
    (su.myelinated_axons, {"n_axons": 4, "length": 0.0}, "length"),
    (su.myelinated_axons, {"n_axons": 4, "length": INF}, "length"),
    (su.myelinated_axons, {"n_axons": 4, "min_gap": -1e-7}, "min_gap"),
    # undulating axons
    (su.undulating_axons, {"n_axons": 6, "amplitude": NAN}, "amplitude"),
    (su.undulating_axons, {"n_axons": 6, "amplitude": INF}, "amplitude"),
    (su.undulating_axons, {"n_axons": 6, "amplitude": [1e-6, 1e-6]}, "amplitude"),
    (su.undulating_axons, {"n_axons": 6, "wavelength": 0.0}, "wavelength"),
    # beaded axons
    (su.beaded_axons, {"n_axons": 4, "spacing": "random", "bead_width": 0.0}, "bead_width"),
    (su.beaded_axons, {"n_axons": 4, "spacing": "random", "bead_width": NAN}, "bead_width"),
    (su.beaded_axons, {"n_axons": 4, "bead_amplitude": NAN}, "bead_amplitude"),
    # somas with neurites
    (su.somas_with_neurites, {"n_cells": 2, "resolution": 0.0}, "resolution"),
    (su.somas_with_neurites, {"n_cells": 2, "resolution": NAN}, "resolution"),
    (su.somas_with_neurites, {"n_cells": 2, "fillet": -1e-7}, "fillet"),
    (su.somas_with_neurites, {"n_cells": 2, "fillet": NAN}, "fillet"),
    (su.somas_with_neurites, {"n_cells": 2, "max_tries": 0}, "max_tries"),
    # meshed primitives
    (su.meshed_cylinder, {"radius": 1e-6, "length": 0.0}, "length"),
    (su.meshed_cylinder, {"radius": 1e-6, "length": NAN}, "length"),
    (su.meshed_cylinder, {"radius": 1e-6, "n_z": NAN}, "n_z"),
    # SWC
    (su.from_swc, {"path": SWC, "radius_scale": INF}, "radius_scale"),
    (su.from_swc, {"path": SWC, "radius_scale": NAN}, "radius_scale"),
    (su.from_swc, {"path": SWC, "resolution": 0.4e-6, "box": 60e-6, "gap": -1e-6}, "gap"),
    (su.from_swc, {"path": SWC, "resolution": 0.4e-6, "box": 60e-6, "gap": NAN}, "gap"),
    (su.from_swc, {"path": SWC, "resolution": 0.0}, "resolution"),
    (su.from_swc, {"path": SWC, "min_radius": NAN}, "min_radius"),
    (su.from_swc, {"path": SWC, "prune": -1e-6}, "prune"),
    (su.from_swc, {"path": SWC, "resample": 0.0}, "resample"),
    (su.from_swc, {"path": SWC, "n_cells": 0}, "n_cells"),
    # sphere unions
    (su.sphere_chain_axons, {"n_axons": 3, "icvf": 0.3, "spacing": NAN}, "spacing"),
    (su.sphere_chain_axons, {"n_axons": 3, "icvf": 0.3, "bead_amplitude": NAN}, "bead_amplitude"),
]


@pytest.mark.parametrize("factory, kwargs, name", CASES,
                         ids=[f"{f.__name__}-{n}-{i}" for i, (f, _, n) in enumerate(CASES)])
def test_generators_name_the_bad_numeric_argument(factory, kwargs, name):
    with pytest.raises(ValueError, match=name):
        factory(**kwargs)
