"""Databases, configs, sweeps: round trip, SIGKILL + resume, Dask == serial, clear errors."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import walker
from diffwalk import config as cfgmod
from diffwalk import database
from diffwalk.cli import main
from diffwalk.quantities import ConfigError, parse_quantity
from diffwalk.sweep import run_sweep

BASE = textwrap.dedent("""
    [substrate]
    type = "cylinder_lattice"
    radius = "3 um"
    icvf = 0.6

    [[scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "30 ms"
    bvalues = "0 1000 2500 s/mm^2"
    directions = 3

    [simulation]
    n_walkers = 1500
    n_steps = 200
    diffusivity = "2 um^2/ms"
    start = "uniform"
    seed = 3
""")

SWEEP = BASE + textwrap.dedent("""
    [sweep]
    seeds = [0, 1, 2]

    [sweep.grid]
    "substrate.radius" = ["2 um", "3 um"]
    "substrate.icvf" = [0.4, 0.5]
""")


# ------------------------------------------------------------------ configs
def test_quantities_parse_units_to_si():
    assert parse_quantity("40 ms", "time", "x") == pytest.approx(0.04)
    assert parse_quantity("2 um^2/ms", "diffusivity", "x") == pytest.approx(2e-9)
    np.testing.assert_allclose(parse_quantity("0 1000 3000 s/mm^2", "bvalue", "x", many=True), [0, 1e9, 3e9])
    np.testing.assert_allclose(parse_quantity(["5 um", "1e-6 m"], "length", "x", many=True), [5e-6, 1e-6])


@pytest.mark.parametrize("patch,match", [
    (("[simulation]", "[simulation]\nwalkers = 10"), r"unknown key\(s\) \['walkers'\]"),
    (('radius = "3 um"', "radius = 3"), "substrate.radius = 3: give a unit"),
    (('radius = "3 um"', 'radius = "3 ms"'), "'ms' is a unit of time"),
    (('delta = "10 ms"', 'delta = "10 um"'), "not a time unit"),
    (("icvf = 0.6", "icvf = 0.95"), "hexagonal lattice holds"),
    (('type = "pgse"', 'type = "pgse"\nDelta2 = "3 ms"'), "unknown key"),
    (('diffusivity = "2 um^2/ms"', 'diffusivity = "2"'), "expected 'number unit'"),
    (("[simulation]", "[simul]"), "unknown top-level"),
])
def test_config_errors_name_field_value_and_unit(patch, match):
    text = BASE.replace(*patch)
    import tomllib
    with pytest.raises(ConfigError, match=match):
        cfgmod.parse_job(tomllib.loads(text))


def test_config_echo_and_sweep_rows():
    import tomllib
    job = cfgmod.parse_job(tomllib.loads(BASE))
    text = cfgmod.echo_text(job)
    assert "radius=3e-06 m" in text and "diffusivity=2e-09 m^2/s" in text
    assert len(job.scheme) == 1 + 2 * 3
    names, rows = cfgmod.sweep_rows(tomllib.loads(SWEEP))
    assert names == ["substrate.radius", "substrate.icvf", "seed"] and len(rows) == 12
    assert rows[5]["params"] == {"substrate.radius": "2 um", "substrate.icvf": 0.5, "seed": 2}
    with pytest.raises(ConfigError, match="does not name"):
        cfgmod.sweep_rows(tomllib.loads(SWEEP.replace('"substrate.icvf"', '"substrat.icvf"')))


def test_misspelled_sweep_field_fails_before_any_row_runs(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['icfv'\]"):
        run_sweep(SWEEP.replace('"substrate.icvf"', '"substrate.icfv"'), tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------------ database
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_database_round_trip(tmp_path):
    import tomllib
    db_path = run_sweep(BASE, tmp_path / "one.h5", is_sweep=False)
    db = database.open_database(db_path)
    job = cfgmod.parse_job(tomllib.loads(BASE))
    res = walker.simulate(job.substrate, job.scheme, **job.simulation)
    np.testing.assert_array_equal(db.signal[0], res.signal.astype(np.float32))
    np.testing.assert_array_equal(db.stderr[0], res.stderr.astype(np.float32))
    np.testing.assert_array_equal(db.compartments["intra"]["signal"][0],
                                  res.compartment_signals["intra"].astype(np.float32))
    np.testing.assert_allclose(db.scheme.bvalues, job.scheme.bvalues)
    assert db.ground_truth[0]["volume_fractions"]["intra"] == pytest.approx(0.6)
    assert db.provenance[0]["seed"] == 3 and db.columns["escapes"][0] == 0
    with h5py.File(db_path) as f:
        assert f["rows/signal"].attrs["units"] and f["scheme/bvalues"].attrs["units"] == "s/m^2"
        assert f["rows/signal"].dims[1][0].name == "/scheme/bvalues"
        assert f.attrs["convention"].startswith("SI")
    # exports
    database.export_npz(db, tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz") as z:
        np.testing.assert_array_equal(z["signal"], db.signal)
    pytest.importorskip("nibabel")
    files = database.export_nifti(db, tmp_path / "dwi")
    import nibabel as nib
    img = nib.load(files[0])
    assert img.shape == (1, 1, 1, len(db.scheme)) and np.linalg.det(img.affine[:3, :3]) < 0


def test_existing_database_from_another_spec_is_not_overwritten(tmp_path):
    p = run_sweep(BASE, tmp_path / "a.h5", is_sweep=False)
    before = p.read_bytes()
    with pytest.raises(ConfigError, match="another spec"):
        run_sweep(BASE.replace("seed = 3", "seed = 4"), p, is_sweep=False)
    assert p.read_bytes() == before


def test_info_on_foreign_and_truncated_files(tmp_path, capsys):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(database.DatabaseError, match="not a diffwalk database"):
        database.open_database(foreign)
    good = run_sweep(BASE, tmp_path / "g.h5", is_sweep=False)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(database.DatabaseError, match="truncated or damaged"):
        database.open_database(cut)
    assert main(["info", str(cut)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert main(["info", str(good)]) == 0


def test_sweep_killed_by_sigkill_then_resumed_equals_uninterrupted(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP.replace("n_walkers = 1500", "n_walkers = 6000"))
    db = tmp_path / "killed.h5"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "diffwalk", "sweep", str(spec), "-o", str(db)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = database.PartsFolder(db).path
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("row_*.npz"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_parts = len(list(parts.glob("row_*.npz")))
    assert 3 <= n_parts < 12, "the sweep must be killed mid-way for this test to mean anything"
    partial = database.open_database(db)  # readable right after the kill
    assert partial.n_rows == 12 and partial.done.sum() < 12
    assert main(["resume", str(db)]) == 0
    resumed = database.open_database(db)
    full = database.open_database(run_sweep(spec.read_text(), tmp_path / "full.h5"))
    assert resumed.done.all() and full.done.all()
    np.testing.assert_array_equal(resumed.signal, full.signal)
    np.testing.assert_array_equal(resumed.columns["seed"], full.columns["seed"])
    np.testing.assert_array_equal(resumed.params["substrate.radius"], full.params["substrate.radius"])
    assert not parts.exists()


def test_dask_local_cluster_equals_serial(tmp_path):
    pytest.importorskip("dask.distributed")
    small = SWEEP.replace("seeds = [0, 1, 2]", "seeds = [0]")
    serial = database.open_database(run_sweep(small, tmp_path / "serial.h5"))
    dask_db = database.open_database(run_sweep(small, tmp_path / "dask.h5", local=2))
    np.testing.assert_array_equal(serial.signal, dask_db.signal)
    np.testing.assert_array_equal(serial.stderr, dask_db.stderr)
    for c in serial.compartments:
        np.testing.assert_array_equal(serial.compartments[c]["signal"], dask_db.compartments[c]["signal"])


def test_cli_simulate_and_show_substrate(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    assert main(["simulate", str(cfg), "-o", str(tmp_path / "s.h5")]) == 0
    assert "1 of 1 finished" in capsys.readouterr().out
    assert main(["show-substrate", str(cfg), "-o", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 5000
    cfg.write_text(BASE.replace('radius = "3 um"', "radius = 3"))
    assert main(["simulate", str(cfg), "-o", str(tmp_path / "t.h5")]) == 2
    assert "give a unit" in capsys.readouterr().err
    assert not (tmp_path / "t.h5").exists()


def test_main_job_example_quick(tmp_path):
    from diffwalk.examples import main_job
    paths = main_job.run(tmp_path, n_walkers=500, n_steps=400)
    db = database.open_database(paths[0])
    assert db.done.all() and db.n_rows == 4 and int(db.columns["escapes"].sum()) == 0
    assert "| row |" in paths[2].read_text() and paths[1].stat().st_size > 20_000
    # rerunning continues the finished database instead of recomputing it
    before = paths[0].stat().st_mtime_ns
    main_job.run(tmp_path, n_walkers=500, n_steps=400)
    assert database.open_database(paths[0]).done.all()
    assert paths[0].stat().st_mtime_ns >= before


def test_jobqueue_without_the_extra_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    try:
        import dask_jobqueue  # noqa: F401
        pytest.skip("dask-jobqueue is installed; no batch system to test it on here")
    except ImportError:
        pass
    spec = tmp_path / "s.toml"
    spec.write_text(SWEEP)
    assert main(["sweep", str(spec), "-o", str(tmp_path / "q.h5"), "--jobqueue", "slurm"]) == 2
    assert "diffwalk[hpc]" in capsys.readouterr().err


def test_scheme_entries_on_grids_that_do_not_nest_are_put_on_one_grid():
    import tomllib
    import sequences as sq
    # edges on a 12 us lattice give a 6 us grid, which does not nest with the 10 us grid of the first entry
    odd = sq.pgse(1.212e-3, 3.6e-3, bvalues=[1e9])
    assert odd.dt == pytest.approx(6e-6)
    with pytest.raises(ValueError, match="integer"):
        sq.concatenate([sq.pgse(10e-3, 30e-3, bvalues=[1e9]), odd])
    text = BASE.replace('directions = 3\n', 'directions = 3\n\n[[scheme]]\ntype = "pgse"\ndelta = "1.212 ms"\n'
                        'Delta = "3.6 ms"\nbvalues = "1000 s/mm^2"\n')
    job = cfgmod.parse_job(tomllib.loads(text))
    assert len(job.scheme) == 7 + 1
    np.testing.assert_allclose(job.scheme.bvalues[-1], 1e9, rtol=1e-6)
    job.scheme.check_echo()


PER_COMPARTMENT = BASE.replace('diffusivity = "2 um^2/ms"',
                               'diffusivity = {intra = "1 um^2/ms", extra = "2 um^2/ms"}\n'
                               't2 = {intra = "70 ms", extra = "100 ms"}')


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_per_compartment_diffusivity_and_t2_in_configs_and_sweeps(tmp_path):
    import tomllib
    job = cfgmod.parse_job(tomllib.loads(PER_COMPARTMENT))
    assert job.simulation["diffusivity"] == pytest.approx({"intra": 1e-9, "extra": 2e-9})
    assert job.simulation["t2"] == pytest.approx({"intra": 0.07, "extra": 0.1})
    assert "diffusivity={intra: 1e-09 m^2/s, extra: 2e-09 m^2/s}" in cfgmod.echo_text(job)
    # a sweep over one compartment's value stores it in SI, and each row equals the direct simulation (without
    # T2 here: the relaxation kernel variant is exercised in test_membranes, and compiling it again costs CI time)
    spec = PER_COMPARTMENT.replace('t2 = {intra = "70 ms", extra = "100 ms"}', "")
    spec += '[sweep]\nseeds = [0]\n[sweep.grid]\n"simulation.diffusivity.intra" = ["0.5 um^2/ms", "1 um^2/ms"]\n'
    db = database.open_database(run_sweep(spec, tmp_path / "db.h5"))
    assert list(db.params["simulation.diffusivity.intra"]) == pytest.approx([0.5e-9, 1e-9])
    job = cfgmod.parse_job(tomllib.loads(spec))
    res = walker.simulate(job.substrate, job.scheme, **{**job.simulation, "seed": 0})
    np.testing.assert_array_equal(db.signal[1], res.signal.astype(np.float32))
    assert db.ground_truth[1]["diffusivity"] == pytest.approx({"intra": 1e-9, "extra": 2e-9})


@pytest.mark.parametrize("line, match", [
    ('diffusivity = {intra = "1 um^2/ms", axon = "2 um^2/ms"}', r"simulation.diffusivity .*\['axon'\]"),
    ('diffusivity = {intra = 1e-9, extra = "2 um^2/ms"}', "simulation.diffusivity.intra"),
    ('diffusivity = "2 um^2/ms"\nt2 = 0.07', "simulation.t2"),
    ('diffusivity = "2 um^2/ms"\nt2 = "70 s"', "t2"),
])
def test_per_compartment_values_are_checked_with_the_field_named(tmp_path, line, match):
    spec = BASE.replace('diffusivity = "2 um^2/ms"', line)
    with pytest.raises(ConfigError, match=match):
        run_sweep(spec, tmp_path / "bad.h5", is_sweep=False)
    assert not (tmp_path / "bad.h5").exists()


def test_direction_dependent_permeability_in_configs(tmp_path):
    import tomllib
    spec = BASE.replace('icvf = 0.6', 'icvf = 0.6\npermeability = {outward = "20 um/s", inward = "40 um/s"}')
    job = cfgmod.parse_job(tomllib.loads(spec))
    np.testing.assert_allclose(job.substrate.permeability[0], [2e-5, 4e-5])
    sweep = spec + '[sweep]\nseeds = [0]\n[sweep.grid]\n"substrate.permeability.inward" = ["40 um/s", "60 um/s"]\n'
    db = database.open_database(run_sweep(sweep, tmp_path / "db.h5"))
    assert list(db.params["substrate.permeability.inward"]) == pytest.approx([4e-5, 6e-5])
    assert db.ground_truth[1]["permeability"] == pytest.approx({"outward": 2e-5, "inward": 6e-5})
    with pytest.raises(ConfigError, match="outward = ..., inward = ..."):
        cfgmod.parse_job(tomllib.loads(spec.replace("inward", "in")))


def test_relaxivity_in_configs_sweeps_and_database_rows(tmp_path):
    import tomllib
    spec = BASE.replace('icvf = 0.6', 'icvf = 0.6\nrelaxivity = "10 um/s"')
    job = cfgmod.parse_job(tomllib.loads(spec))
    np.testing.assert_allclose(job.substrate.relaxivity, 1e-5)
    sweep = spec + '[sweep]\nseeds = [0]\n[sweep.grid]\n"substrate.relaxivity" = ["0 um/s", "20 um/s"]\n'
    db = database.open_database(run_sweep(sweep, tmp_path / "db.h5"))
    assert list(db.params["substrate.relaxivity"]) == pytest.approx([0.0, 2e-5])
    gt = db.ground_truth[1]
    assert gt["relaxivity"] == pytest.approx(2e-5)
    assert gt["surface_relaxation_rate"]["intra"] == pytest.approx(2e-5 * 2 / 3e-6)
    assert "relaxivity" not in db.ground_truth[0]
    # the b = 0 signal decays with relaxing walls and stays 1 without
    assert db.signal[0, 0] == 1.0 and db.signal[1, 0] < 0.99
    with pytest.raises(ConfigError, match="relaxivity.*unit"):
        cfgmod.parse_job(tomllib.loads(spec.replace('"10 um/s"', '"10 um^2/ms"')))
    with pytest.raises(ConfigError, match="um/ms"):
        cfgmod.parse_job(tomllib.loads(spec.replace('"10 um/s"', '"5 m/s"')))


def test_myelinated_axons_in_configs_with_values_per_compartment_and_surface(tmp_path):
    import tomllib
    spec = textwrap.dedent("""
        [substrate]
        type = "myelinated_axons"
        n = 6
        mean_radius = "1.5 um"
        g_ratio = 0.65
        fvf = 0.5
        permeability = {inner = "10 um/s", outer = "20 um/s"}

        [[scheme]]
        type = "pgse"
        delta = "2 ms"
        Delta = "5 ms"
        bvalues = "0 1000 s/mm^2"
        directions = 1
        echo_time = "20 ms"

        [simulation]
        n_walkers = 400
        n_steps = 2000
        diffusivity = {myelin = "0.5 um^2/ms", intra = "2 um^2/ms", extra = "2 um^2/ms"}
        t2 = {myelin = "15 ms", intra = "80 ms", extra = "60 ms"}
        start = "uniform"
        """)
    job = cfgmod.parse_job(tomllib.loads(spec))
    assert job.substrate.region_names == ["myelin", "intra", "extra"]
    np.testing.assert_allclose(np.unique(job.substrate.permeability), [1e-5, 2e-5])
    sweep = spec + '[sweep]\nseeds = [0]\n[sweep.grid]\n"simulation.t2.myelin" = ["10 ms", "20 ms"]\n'
    db = database.open_database(run_sweep(sweep, tmp_path / "db.h5"))
    assert list(db.params["simulation.t2.myelin"]) == pytest.approx([0.01, 0.02])
    gt = db.ground_truth[0]
    assert gt["t2"]["myelin"] == pytest.approx(0.01) and len(gt["g_ratios"]) == 6
    assert gt["t2_signal_fractions"]["myelin"][0] < gt["myelin_volume_fraction"]
    with pytest.raises(ConfigError, match="inner = ..., outer = ..."):
        cfgmod.parse_job(tomllib.loads(spec.replace("outer =", "out =")))
