"""Every substrate generator from a TOML config: end to end into a database, sweeps, reuse and clear refusals."""

import inspect
import textwrap
import tomllib

import numpy as np
import pytest

import substrates
from diffwalk import config as cfgmod
from diffwalk import database
from diffwalk.cli import main
from diffwalk.quantities import ConfigError
from diffwalk.sweep import resume, run_sweep

# a short scheme and few walkers: each config runs in seconds; the physics is tested elsewhere
SCHEME = textwrap.dedent("""
    [[scheme]]
    type = "pgse"
    delta = "2 ms"
    Delta = "5 ms"
    bvalues = "0 1000 s/mm^2"
    directions = 2

    [simulation]
    n_walkers = 200
    n_steps = 40
    diffusivity = "2 um^2/ms"
    seed = 1
""")

#: a small neuron (soma + two dendrites), in um: id type x y z radius parent
SWC = "1 1 0 0 0 3 -1\n2 3 0 0 3 1 1\n3 3 0 0 9 1 2\n4 3 3 0 0 1 1\n5 3 9 0 0 1 4\n"
#: spheres along z, in um: x y z radius fibre
SPHERES = "# x, y, z, radius, fibre\n" + "".join(f"5, 5, {z}, 1.5, 0\n" for z in range(4))

#: [substrate] table of each new type (tiny: few axons, coarse meshes), and its ground-truth keys to find
SUBSTRATES = {
    "undulating_axons": ("""
        n_axons = 4
        mean_radius = "1 um"
        amplitude = "0.5 um"
        wavelength = "10 um"
        icvf = 0.3
        resolution = 0.1
        seed = 1
        """, {"generator", "amplitude", "wavelength", "tortuosity", "icvf_mesh"}),
    "beaded_axons": ("""
        n_axons = 4
        mean_radius = "1 um"
        bead_amplitude = 0.3
        bead_spacing = "5 um"
        n_beads = 2
        icvf = 0.3
        resolution = 0.1
        """, {"generator", "bead_spacing", "bead_amplitude", "shaft_radii", "icvf_mesh"}),
    "packed_axons": ("""
        n_axons = 6
        mean_radius = "1 um"
        icvf = 0.2
        dispersion = 0.2
        length = "6 um"
        resolution = 0.1
        """, {"generator", "icvf_target"}),
    "somas_with_neurites": ("""
        n_cells = 2
        soma_radius = "2.5 um"
        soma_radius_sd = "0.2 um"
        neurites = 2
        neurite_radius = "0.8 um"
        neurite_length = "1.5 um"
        volume_fraction = 0.05
        resolution = "0.4 um"
        """, {"generator", "soma_radii", "neurite_radius", "soma_signal_fraction"}),
    "sphere_chain_axons": ("""
        n_axons = 3
        mean_radius = "1 um"
        icvf = 0.3
        bead_amplitude = 0.2
        bead_wavelength = "4 um"
        seed = 2
        """, {"n_fibres"}),
    "crossing_bundles": ("""
        angles = [0, 90]
        n_fibres = 20
        icvf = 0.6
        resolution = 0.05
        seed = 1
        """, {"generator", "crossing_angles", "bundles", "icvf_mesh"}),
    "sphere_union": ("""
        file = "data/spheres.csv"
        units = "um"
        box = "10 10 4 um"
        permeability = "2e-5 m/s"
        """, {"volume_fractions"}),
    "from_swc": ("""
        path = "data/neuron.swc"
        units = "um"
        resolution = "0.5 um"
        """, {"generator", "morphology", "grid_spacing", "cell_volume_mesh"}),
    "from_mesh": ("""
        path = "data/cell.ply"
        units = "um"
        """, {"volume_fractions"}),
}


def write_inputs(folder) -> None:
    """The SWC, mesh and sphere files the configs name, in ``folder/data``."""
    import trimesh
    data = folder / "data"
    data.mkdir(exist_ok=True)
    (data / "neuron.swc").write_text(SWC)
    (data / "spheres.csv").write_text(SPHERES)
    trimesh.creation.icosphere(subdivisions=2, radius=4.0).export(data / "cell.ply")


def spec(kind: str, extra: str = "") -> str:
    return f'[substrate]\ntype = "{kind}"\n' + textwrap.dedent(SUBSTRATES[kind][0]) + SCHEME + extra


@pytest.fixture
def no_reuse():
    """Every substrate built afresh (and the counts reset) for the duration of a test."""
    old = cfgmod.set_substrate_cache_size(0)
    cfgmod.clear_substrate_cache()
    yield
    cfgmod.set_substrate_cache_size(old)


def test_every_generator_parameter_is_a_config_key():
    # the new types take exactly their generator's keyword arguments (sphere_union: plus its file of spheres)
    for kind, fn in (*cfgmod.GENERATORS.items(), ("sphere_union", substrates.sphere_union)):
        params = set(inspect.signature(fn).parameters) - {"description", "truth"}
        extra = {"file", "units"} if kind == "sphere_union" else set()
        assert set(cfgmod.SUBSTRATE_FIELDS[kind]) == params | extra, kind
        assert set(cfgmod.FIELD_HELP[f"substrate.{kind}"]) == params | extra, kind
    assert set(SUBSTRATES) == set(cfgmod.GENERATORS) | {"sphere_union"}


@pytest.mark.parametrize("kind", sorted(SUBSTRATES))
def test_every_new_type_runs_end_to_end_into_a_database(kind, tmp_path, monkeypatch):
    write_inputs(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(spec(kind))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # file paths are read from the config file's folder, not the working directory
    assert main(["simulate", str(config), "-o", str(tmp_path / "db.h5")]) == 0
    db = database.open_database(tmp_path / "db.h5")
    assert db.done.all() and np.all(np.isfinite(db.signal))
    truth = db.ground_truth[0]
    assert SUBSTRATES[kind][1] <= set(truth), (kind, sorted(truth))
    if "generator" in truth:
        assert truth["generator"] == kind
    job = cfgmod.parse_job(tomllib.loads(config.read_text()), tmp_path)
    assert set(job.substrate.ground_truth()) <= set(truth)
    assert db.attrs["config_dir"] == str(tmp_path.resolve())


def test_lengths_reach_the_generator_in_si():
    job = cfgmod.parse_job(tomllib.loads(spec("undulating_axons").replace('"0.5 um"', '"500 nm"')))
    assert job.echo["substrate"]["amplitude"] == pytest.approx(5e-7)
    assert job.substrate.truth["amplitude"] == pytest.approx(5e-7)
    assert job.substrate.truth["wavelength"] == pytest.approx(1e-5)
    # one value per axon where the generator takes one
    job = cfgmod.parse_job(tomllib.loads(spec("undulating_axons").replace('"0.5 um"', '"0.2 0.3 0.4 0.5 um"')))
    np.testing.assert_allclose(job.substrate.truth["amplitude"], [2e-7, 3e-7, 4e-7, 5e-7])
    job = cfgmod.parse_job(tomllib.loads(spec("somas_with_neurites")))
    assert job.substrate.truth["grid_spacing"] == pytest.approx(4e-7)
    assert "[substrate] type=somas_with_neurites" in cfgmod.echo_text(job)


def test_inline_sphere_union_equals_the_file(tmp_path):
    write_inputs(tmp_path)
    inline = textwrap.dedent("""
        [substrate]
        type = "sphere_union"
        centers = ["5 5 0 um", "5 5 1 um", "5 5 2 um", "5 5 3 um"]
        radii = "1.5 1.5 1.5 1.5 um"
        fibre = [0, 0, 0, 0]
        box = "10 10 4 um"
        """) + SCHEME
    a = cfgmod.parse_job(tomllib.loads(inline)).substrate
    b = cfgmod.parse_job(tomllib.loads(spec("sphere_union")), tmp_path).substrate
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.radii, b.radii)
    with pytest.raises(ConfigError, match="either in file or as centers and radii"):
        cfgmod.parse_job(tomllib.loads(spec("sphere_union").replace('box = "10 10 4 um"',
                                                                    'box = "10 10 4 um"\nradii = "1 um"')), tmp_path)
    (tmp_path / "data" / "spheres.csv").write_text("5 5 0\n")
    with pytest.raises(ConfigError, match=r"substrate.file = .*spheres.csv.*x y z radius"):
        cfgmod.parse_job(tomllib.loads(spec("sphere_union")), tmp_path)


def test_sweep_over_a_mesh_generator_parameter_stores_si_values_and_truth(tmp_path):
    sweep = spec("undulating_axons",
                 '[sweep]\nseeds = [0]\n[sweep.grid]\n"substrate.amplitude" = ["0.2 um", "0.4 um"]\n')
    db = database.open_database(run_sweep(sweep, tmp_path / "sweep.h5"))
    assert db.done.all()
    np.testing.assert_allclose(db.params["substrate.amplitude"], [2e-7, 4e-7])
    assert [gt["amplitude"] for gt in db.ground_truth] == pytest.approx([2e-7, 4e-7])
    assert db.ground_truth[0]["tortuosity"] != db.ground_truth[1]["tortuosity"]
    # and a relative swing of another generator, a plain number
    _, rows = cfgmod.sweep_rows(tomllib.loads(spec("beaded_axons", '[sweep]\n[sweep.grid]\n'
                                                                  '"substrate.bead_amplitude" = [0.2, 0.4]\n')))
    amps = [cfgmod.parse_job(r["config"]).substrate.truth["bead_amplitude"] for r in rows]
    assert amps == pytest.approx([0.2, 0.4])


def test_rows_sharing_a_substrate_build_it_once_and_reuse_changes_nothing(tmp_path, no_reuse):
    # 3 walker seeds x 2 diffusivities: one [substrate] table, six rows
    sweep = spec("undulating_axons", '[sweep]\nseeds = [0, 1, 2]\n[sweep.grid]\n'
                                     '"simulation.diffusivity" = ["1 um^2/ms", "2 um^2/ms"]\n')
    fresh = database.open_database(run_sweep(sweep, tmp_path / "fresh.h5"))
    assert cfgmod.substrate_cache_info()["hits"] == 0
    cfgmod.set_substrate_cache_size(4)
    cfgmod.clear_substrate_cache()
    reused = database.open_database(run_sweep(sweep, tmp_path / "reused.h5"))
    info = cfgmod.substrate_cache_info()
    assert info["misses"] == 1 and info["hits"] == 2 * 6 - 1  # parsed up front, then once per row
    assert fresh.signal.tobytes() == reused.signal.tobytes()
    assert fresh.stderr.tobytes() == reused.stderr.tobytes()
    assert fresh.ground_truth == reused.ground_truth
    # a changed substrate seed is another substrate; a unit spelt differently is the same one
    a, _ = cfgmod.build_substrate({"type": "sphere_chain_axons", "n_axons": 3, "mean_radius": "1 um", "seed": 0})
    b, _ = cfgmod.build_substrate({"type": "sphere_chain_axons", "n_axons": 3, "mean_radius": "1e-6 m", "seed": 0})
    c, _ = cfgmod.build_substrate({"type": "sphere_chain_axons", "n_axons": 3, "mean_radius": "1 um", "seed": 1})
    assert a is b and c is not a


def test_an_edited_file_is_another_substrate(tmp_path):
    write_inputs(tmp_path)
    first = cfgmod.parse_job(tomllib.loads(spec("from_swc")), tmp_path).substrate
    (tmp_path / "data" / "neuron.swc").write_text(SWC.replace("9 0 0 1 4", "7 0 0 1 4"))
    second = cfgmod.parse_job(tomllib.loads(spec("from_swc")), tmp_path).substrate
    assert second is not first
    assert second.truth["morphology"] != first.truth["morphology"]


@pytest.mark.parametrize("kind", sorted(SUBSTRATES))
def test_unknown_keys_are_refused_naming_the_key_and_the_valid_ones(kind, tmp_path):
    write_inputs(tmp_path)
    text = spec(kind).replace("[[scheme]]", "seeed = 3\n[[scheme]]", 1)
    with pytest.raises(ConfigError) as err:
        cfgmod.parse_job(tomllib.loads(text), tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert f'[substrate] type = "{kind}": unknown key(s) [\'seeed\']' in msg
    for key in cfgmod.SUBSTRATE_FIELDS[kind]:
        assert f"'{key}'" in msg
    if "seed" in cfgmod.SUBSTRATE_FIELDS[kind]:
        assert "did you mean 'seed'" in msg


@pytest.mark.parametrize("patch,match", [
    (('amplitude = "0.5 um"', "amplitude = 0.5"), "substrate.amplitude = 0.5: give a unit"),
    (('wavelength = "10 um"', 'wavelength = "10 ms"'), "'ms' is a unit of time"),
    (("icvf = 0.3", 'icvf = "0.3 um"'), "expected a plain number"),
    (("n_axons = 4", "n_axons = 0"), "n_axons = 0: expected a whole number >= 1"),
    (('amplitude = "0.5 um"', 'amplitude = "0.5 um"\nshape = "zigzag"'), "shape must be 'sinusoid' or 'helix'"),
])
def test_bad_values_are_refused_naming_the_field(patch, match):
    with pytest.raises(ConfigError, match=match):
        cfgmod.parse_job(tomllib.loads(spec("undulating_axons").replace(*patch)))


@pytest.mark.parametrize("kind,key", [("from_swc", "path"), ("from_mesh", "path"), ("sphere_union", "file")])
def test_a_missing_file_is_refused_naming_the_key_and_the_path(kind, key, tmp_path):
    # no inputs written: every file is missing
    with pytest.raises(ConfigError) as err:
        cfgmod.parse_job(tomllib.loads(spec(kind)), tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"substrate.{key} = 'data/")
    assert str(tmp_path / "data") in msg and "no such file" in msg
    config = tmp_path / "config.toml"
    config.write_text(spec(kind))
    with pytest.raises(ConfigError, match=f"substrate.{key}"):
        run_sweep(config.read_text(), tmp_path / "db.h5", is_sweep=False, base_dir=tmp_path)
    assert not (tmp_path / "db.h5").exists()


def test_resume_reads_files_from_the_folder_the_sweep_began_in(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    sweep = spec("from_mesh", '[sweep]\nseeds = [0, 1]\n')
    db_path = run_sweep(sweep, tmp_path / "db.h5", base_dir=tmp_path)
    first = database.open_database(db_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = database.open_database(resume(db_path))  # nothing left to run, yet every row is parsed again
    assert again.signal.tobytes() == first.signal.tobytes()


def test_crossing_angle_is_swept_from_a_config(tmp_path):
    sweep = spec("crossing_bundles", '[sweep]\nseeds = [0]\n[sweep.grid]\n"substrate.angles" = [[0, 90], [0, 45]]\n')
    db = database.open_database(run_sweep(sweep, tmp_path / "sweep.h5"))
    assert db.done.all()
    assert [gt["crossing_angles"][0] for gt in db.ground_truth] == pytest.approx([90.0, 45.0])
    # a signal per bundle in every row, beside the compartments (walkers start inside the fibres here)
    assert set(db.groups) == {"intra.bundle_0", "intra.bundle_1"}
    counts = sum(g["count"] for g in db.groups.values())
    np.testing.assert_array_equal(counts, db.compartments["intra"]["count"])
    assert np.all(counts == db.columns["n_walkers"])
    assert np.all(np.isfinite(db.groups["intra.bundle_0"]["signal"]))
    # the rewrite that resume and merges do (rows read back, file written anew) keeps them
    rows = database.rows_from_file(tmp_path / "sweep.h5")
    database.create(tmp_path / "copy.h5", db.scheme, db.n_rows, list(db.params), db.attrs["spec"], rows)
    copy = database.open_database(tmp_path / "copy.h5")
    assert set(copy.groups) == set(db.groups)
    for name, g in db.groups.items():
        np.testing.assert_array_equal(copy.groups[name]["signal"], g["signal"])
        np.testing.assert_array_equal(copy.groups[name]["count"], g["count"])
