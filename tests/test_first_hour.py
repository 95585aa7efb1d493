"""A new user's first hour: bad inputs get clear errors naming the argument or file, files are never left half
written or blocking, and what the README claims is what the code does. Each test failed on the old code."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import trimesh

import sequences as sq
import substrates as su
import validation
import walker
from diffwalk import database
from diffwalk.cli import main
from diffwalk.quantities import ConfigError, parse_quantity

D0 = 2e-9
ROOT = Path(__file__).resolve().parents[1]


def _scheme():
    return sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9])


# ------------------------------------------------------------------ silent wrong answers
@pytest.mark.parametrize("call,match", [
    (lambda: sq.pgse(10e-3, 30e-3, gradient_strength=[80]), "mT/m"),  # 80 mT/m passed as T/m
    (lambda: sq.pgse(10e-3, 30e-3, gradient_strength=[20]), "check the units"),  # below the cap, b gives it away
    (lambda: sq.dde(10e-3, 20e-3, 20e-3, gradient_strength=[20]), "check the units"),
    (lambda: sq.from_waveforms(np.r_[np.full(100, 25.0), np.full(100, -25.0)][:, None] * [1, 0, 0], 1e-4),
     "check the units"),
    (lambda: sq.pgse(10, 30, bvalues=[1e9]), "seconds"),  # ms passed as s
    (lambda: su.spheres([2e-6], [[np.nan, 0, 0]], [10e-6] * 3), "centers"),
    (lambda: su.cylinders([2e-6], [[5, 5]], [20e-6] * 2), "micrometres"),
    (lambda: walker.simulate(su.free(), _scheme(), n_walkers=2.7, diffusivity=D0), "n_walkers"),
    (lambda: walker.simulate(su.free(), _scheme(), n_walkers=100, n_steps=True, diffusivity=D0), "n_steps"),
    (lambda: walker.simulate(su.free(), _scheme(), n_walkers=100, diffusivity=D0, n_trajectories=0.5),
     "n_trajectories"),
    (lambda: walker.simulate(su.free(), _scheme(), n_walkers=100, diffusivity=D0, record_times=[np.nan]),
     "record_times"),
    (lambda: su.packed_axons(2.5), "n_axons"),
    (lambda: su.packed_axons(10, icvf=np.nan), "icvf"),
    (lambda: su.cylinder_lattice(2e-6, 0.5, repeats=1.5), "repeats"),
    (lambda: su.meshed_sphere(4e-6, subdivisions=2.5), "subdivisions"),
    (lambda: su.somas_with_neurites(n_cells=-1), "n_cells"),
    (lambda: su.gamma_radii(1.5, 1e-6), "n must be"),
])
def test_implausible_or_non_integer_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("seed", ["abc", 1.5, -1, None, True])
def test_a_bad_seed_names_the_seed(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        walker.simulate(su.free(), _scheme(), n_walkers=10, diffusivity=D0, seed=seed)


def test_a_camino_file_in_mT_per_m_is_refused(tmp_path):
    for g in ("80", "20"):  # above the hardware cap, and below it (the b-values give it away)
        p = tmp_path / f"g{g}.scheme"
        p.write_text(f"VERSION: STEJSKALTANNER\n1 0 0 {g} 0.03 0.01 0.05\n")
        with pytest.raises(ValueError, match=re.escape(str(p))):
            sq.read_camino(p)


# ------------------------------------------------------------------ raw library errors from readers
@pytest.mark.parametrize("reader,files,match", [
    ("mrtrix", {"t.b": "1 0 0 0\n0 1 0 1000 5\n"}, r"t\.b, line 2: expected 4 numbers, got 5"),
    ("mrtrix", {"t.b": "1 0 0 0\n0 1 0 x\n"}, r"t\.b, line 2: 'x' is not a number"),
    ("camino", {"c.scheme": b"\x00\xff\xfe\x81binary"}, r"c\.scheme: not a text file"),
    ("mcdc", {"m.txt": b"\x89PNG\x00\xff"}, r"m\.txt: not a text file"),
    ("fsl", {"x.bval": "0 1000 abc\n", "x.bvec": "1 0 0\n0 1 0\n0 0 1\n"}, r"x\.bval, line 1: 'abc' is not"),
    ("fsl", {"x.bval": "", "x.bvec": "1 0 0\n"}, r"x\.bval: holds no numbers"),
    ("fsl", {"x.bval": "0 1000\n", "x.bvec": "1 0\n0 1 0\n"}, r"x\.bvec, line 2: 3 numbers where line 1 has 2"),
])
def test_readers_name_the_file_the_line_and_what_they_expected(tmp_path, reader, files, match):
    paths = []
    for name, text in files.items():
        p = tmp_path / name
        (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
        paths.append(p)
    with pytest.raises(ValueError, match=match):
        if reader == "mrtrix":
            sq.read_mrtrix(paths[0], 10e-3, 30e-3)
        elif reader == "camino":
            sq.read_camino(paths[0])
        elif reader == "mcdc":
            sq.read_mcdc(paths[0])
        else:
            sq.read_fsl(paths[0], paths[1], 10e-3, 30e-3)


def test_a_number_without_unit_in_a_config_says_so():
    with pytest.raises(ConfigError, match="has no unit.*'2e-9 m\\^2/s'"):
        parse_quantity("2e-9", "diffusivity", "simulation.diffusivity")


# ------------------------------------------------------------------ meshes from elsewhere
def _soup_cylinder(path):
    # a triangle soup as disimpy and many STL exporters ship: every face its own vertices, winding mixed
    m = trimesh.creation.cylinder(radius=5, height=20, sections=24)
    v = m.vertices[m.faces].reshape(-1, 3)
    f = np.arange(len(v)).reshape(-1, 3)
    flip = np.random.default_rng(0).uniform(size=len(f)) < 0.3
    f[flip] = f[flip][:, ::-1]
    trimesh.Trimesh(v, f, process=False).export(path)


def test_a_triangle_soup_with_mixed_winding_is_repaired_in_the_core_install(tmp_path, monkeypatch):
    p = tmp_path / "soup.stl"
    _soup_cylinder(p)
    with pytest.raises(su.MeshError, match="repair=True to make the winding consistent"):
        su.from_mesh(p, units="um")
    monkeypatch.setitem(sys.modules, "networkx", None)  # the core install: no networkx
    sub = su.from_mesh(p, units="um", repair=True)
    assert any("winding" in r for r in sub.description["repairs"])
    assert sub.n_components == 1
    assert sub.component_volume[0] == pytest.approx(np.pi * 25 * 20 * 1e-18, rel=0.02)


def test_orient_faces_makes_every_edge_run_both_ways():
    from substrates.mesh import orient_faces
    m = trimesh.creation.icosphere(2)
    f = m.faces.copy()
    flip = np.random.default_rng(1).uniform(size=len(f)) < 0.5
    f[flip] = f[flip][:, ::-1]
    g = f.copy()
    fl = orient_faces(g)
    g[fl] = g[fl][:, ::-1]
    e = np.concatenate([g[:, [0, 1]], g[:, [1, 2]], g[:, [2, 0]]])
    assert len({tuple(x) for x in e}) == len(e)  # no directed edge twice: consistent


def test_a_box_smaller_than_a_component_and_nan_vertices_are_named(tmp_path):
    ico = su.meshed_sphere(4e-6, subdivisions=2)
    with pytest.raises(su.MeshError, match="periodic box is only 6 um"):
        su.mesh_substrate(ico.vertices + 5e-6, ico.faces, box=[6e-6, 20e-6, 20e-6])
    v = ico.vertices * 1e6
    v[3] = np.nan
    p = tmp_path / "nan.ply"
    trimesh.Trimesh(v, ico.faces, process=False).export(p)
    with pytest.raises(su.MeshError, match="NaN or infinite coordinates"):
        su.from_mesh(p, units="um")


# ------------------------------------------------------------------ files
SPEC = textwrap.dedent("""
    [substrate]
    type = "cylinder_lattice"
    radius = "3 um"
    icvf = 0.5
    [[scheme]]
    type = "pgse"
    delta = "5 ms"
    Delta = "15 ms"
    bvalues = "0 1000 s/mm^2"
    directions = 3
    [simulation]
    n_walkers = {n}
    n_steps = 400
    diffusivity = "2 um^2/ms"
    start = "uniform"
    [sweep]
    seeds = 2
    [sweep.grid]
    "substrate.icvf" = [0.4, 0.5]
    """)


def test_a_failed_run_leaves_no_file_that_blocks_the_corrected_rerun(tmp_path, capsys):
    bad, good = tmp_path / "bad.toml", tmp_path / "good.toml"
    bad.write_text(SPEC.format(n=0))
    good.write_text(SPEC.format(n=200))
    db = tmp_path / "db.h5"
    assert main(["sweep", str(bad), "-o", str(db)]) == 2
    assert "n_walkers" in capsys.readouterr().err and not db.exists()
    # a database that holds no finished row (made by an older run that failed) is replaced, not a blocker
    from diffwalk import config as cfgmod
    import tomllib
    cfg = tomllib.loads(SPEC.format(n=100))
    database.create(db, cfgmod.parse_job(cfgmod.sweep_rows(cfg)[1][0]["config"]).scheme, 4, ["substrate.icvf",
                                                                                          "seed"], "old spec")
    assert main(["sweep", str(good), "-o", str(db)]) == 0
    assert database.open_database(db).done.all()


def test_resume_refuses_a_spec_edited_inside_the_file(tmp_path):
    import h5py
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(n=200))
    db = tmp_path / "db.h5"
    assert main(["sweep", str(spec), "-o", str(db)]) == 0
    with h5py.File(db, "a") as f:
        f.attrs["spec"] = f.attrs["spec"].replace('"3 um"', '"4 um"')
    with pytest.raises(database.DatabaseError, match="changed after its rows were made"):
        from diffwalk.sweep import resume
        resume(db)


def test_a_selection_that_matches_nothing_says_what_exists(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(n=200))
    db = tmp_path / "db.h5"
    assert main(["sweep", str(spec), "-o", str(db)]) == 0
    d = database.open_database(db)
    assert len(d.select(**{"substrate.icvf": 0.4})) == 2
    with pytest.raises(ValueError, match="substrate.icvf: 0.4, 0.5"):
        d.select(**{"substrate.icvf": 40})


def test_info_counts_the_rows_waiting_in_the_parts_folder(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(n=200))
    db = tmp_path / "db.h5"
    assert main(["sweep", str(spec), "-o", str(db)]) == 0
    d = database.open_database(db)
    rows = database.rows_from_file(db)
    # as after a kill: two rows finished as parts, the file not yet rewritten
    database.create(db, d.scheme, 4, ["substrate.icvf", "seed"], d.attrs["spec"], {i: rows[i] for i in (0, 1)})
    parts = database.PartsFolder(db)
    for i in (2, 3):
        parts.write(i, rows[i])
    capsys.readouterr()
    assert main(["info", str(db)]) == 0
    out = capsys.readouterr().out
    assert "rows: 4 of 4 finished (2 of them in db.h5.parts" in out


def test_nifti_export_of_tensor_encoding_is_whole_and_keeps_the_btensors(tmp_path):
    pytest.importorskip("nibabel")
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(n=200).replace('[simulation]', '[[scheme]]\ntype = "tensor"\nbvalues = '
                                               '"1000 s/mm^2"\nb_delta = 0.0\n[simulation]'))
    db = tmp_path / "db.h5"
    assert main(["sweep", str(spec), "-o", str(db)]) == 0
    stem = tmp_path / "dwi"
    assert main(["export", str(db), "-o", str(stem), "--format", "nifti"]) == 0
    side = json.loads((tmp_path / "dwi.json").read_text())
    assert len(side["btensors_s_per_mm2"]) == 5 and "not written" in side["bval_bvec"]
    assert (tmp_path / "dwi.nii.gz").exists() and not (tmp_path / "dwi.bval").exists()
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    # a format that cannot hold the protocol is refused and leaves no file
    assert main(["export", str(db), "-o", str(stem), "--format", "camino"]) == 2
    assert not (tmp_path / "dwi.scheme").exists()


# ------------------------------------------------------------------ the first run and its outputs
def test_the_cli_does_not_turn_on_other_libraries_logging(tmp_path):
    code = ("import logging, sys; from diffwalk.cli import main; main(['example', '--list']); "
            "print(logging.getLogger().level, logging.getLogger('matplotlib').getEffectiveLevel())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    root, mpl = out.strip().splitlines()[-1].split()
    assert int(root) == 30 and int(mpl) >= 30  # WARNING: matplotlib's font-cache INFO stays quiet


def test_example_list_says_what_the_default_runs_and_sweep_help_documents_spec(capsys):
    assert main(["example", "--list"]) == 0
    out = capsys.readouterr().out
    assert "`diffwalk example` runs waveforms, restricted, main" in out and "leaves out" in out
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "TOML spec" in capsys.readouterr().out


def test_the_readme_model_count_is_the_registry_s():
    text = (ROOT / "README.md").read_text()
    n = int(re.search(r"validation\.list_models\(\)`, (\d+)\)", text).group(1))
    assert n == len(validation.list_models())
    assert all(f"`{m}`" in text or m.endswith(("_gpd", "_callaghan", "_soderman")) for m in validation.list_models())


def test_the_shipped_sweep_example_runs_without_step_warnings():
    import tomllib
    import warnings

    from diffwalk import config as cfgmod
    cfg = tomllib.loads((ROOT / "examples" / "sweep_cylinders.toml").read_text())
    for row in cfgmod.sweep_rows(cfg)[1]:
        job = cfgmod.parse_job(row["config"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            walker.plan_run(job.substrate, job.scheme, 10, job.simulation["diffusivity"],
                            job.simulation["n_steps"], t2=None, gaussian_steps=False, record_times=None,
                            n_trajectories=0, target_stderr=None, max_transit_probability=0.02, transit="corrected")


def test_btensor_glyph_titles_show_the_true_b_and_no_negative_zero():
    import matplotlib
    matplotlib.use("Agg")
    from sequences import plot
    s = sq.tensor_encoding(bvalues=[1e9, 1e9], b_delta=[1.0, 0.0], duration=40e-3)
    for m in range(2):
        fig, ax = plot.plot_btensor_glyph(s, m, scale=1000.0)
        assert "b = 1000 s/mm²" in ax.get_title() and "-0.00" not in ax.get_title()
        assert ax.get_xlim() == (-1000.0, 1000.0)
        matplotlib.pyplot.close(fig)


def test_bias_tables_flag_fits_stuck_on_a_bound():
    # free diffusion seen through Cylinder + Zeppelin: the intra fraction ends on its lower bound (0)
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9, 2e9, 3e9, 1e9, 2e9],
                directions=[[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    y = np.exp(-s.bvalues * D0)
    gt = {"volume_fractions": {"intra": 0.5}, "axis": [1.0, 0, 0], "substrate": "cylinders",
          "effective_radius": 2e-6, "diffusivity": D0}
    rows = validation.bias_table(s, y[None], [gt], np.full((1, len(s)), 1e-3), models=["cylinder_zeppelin"],
                                 snr=None)
    f = next(r for r in rows if r["parameter"] == "f")
    assert f["at_bound"] == 1.0
    from validation.bias import bound_text
    assert bound_text(f) == "100 % of fits"
    assert next(r for r in rows if r["parameter"] == "D_par")["at_bound"] == 0.0


def test_repo_root_has_no_stale_application_modules():
    # walker/ is the engine only (issue 13); a stale file from before the move would shadow diffwalk's
    assert not any((ROOT / "walker" / n).exists() for n in ("cli.py", "database.py", "sweep.py", "config.py"))
    assert os.path.isdir(ROOT / "diffwalk" / "examples")
