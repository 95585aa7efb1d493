"""Training sets for learned estimators (issue 32, part 5): labels from the ground truth, npz and zarr
exports, the CLI, and the example that trains an estimator and judges it beside the analytic fit."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pytest

from diffwalk import database
from diffwalk.cli import main
from diffwalk.sweep import run_sweep
from diffwalk.training import add_noise, training_set, write_training_set

SPEC = textwrap.dedent("""
    [substrate]
    type = "cylinder_lattice"
    radius = "3 um"
    icvf = 0.5

    [[scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "30 ms"
    bvalues = "0 1000 2000 s/mm^2"
    directions = 6

    [simulation]
    n_walkers = 300
    n_steps = 100
    diffusivity = "2 um^2/ms"
    start = "uniform"

    [sweep]
    seeds = [0, 1]

    [sweep.grid]
    "substrate.icvf" = [0.4, 0.6]
""")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "db.h5"
    with warnings.catch_warnings():   # 100 coarse steps on purpose: the step warnings are not checked here
        warnings.simplefilter("ignore")
        run_sweep(SPEC, path)
    return database.open_database(path)


def test_labels_come_from_the_ground_truth_and_the_swept_parameters(db):
    ts = training_set(db)
    assert ts.signals.shape == (4, len(db.scheme)) and ts.labels.shape == (4, len(ts.label_names))
    assert "volume_fractions.intra" in ts.label_names and "substrate.icvf" in ts.label_names
    np.testing.assert_allclose(ts.label("volume_fractions.intra"), ts.label("substrate.icvf"), atol=1e-9)
    np.testing.assert_array_equal(ts.signals, db.signal)
    np.testing.assert_array_equal(ts.bvalues, db.scheme.bvalues)
    assert np.all(np.isfinite(ts.labels))


def test_a_missing_label_is_named_with_what_the_row_has(db):
    with pytest.raises(ValueError, match="'radius_typo'.*row 0.*volume_fractions.intra"):
        training_set(db, labels=["radius_typo"])
    with pytest.raises(KeyError, match="available"):
        training_set(db, labels=["substrate.icvf"]).label("f")


def test_split_is_by_row_and_reproducible(db):
    ts = training_set(db)
    a, b = ts.split(0.25, seed=3)
    assert len(b) == 1 and len(a) == 3 and not set(a) & set(b)
    np.testing.assert_array_equal(ts.split(0.25, seed=3)[1], b)
    with pytest.raises(ValueError, match="test_fraction"):
        ts.split(1.5)


def test_noise_has_the_stated_sigma():
    s = np.full((2, 20_000), 0.5)
    n = add_noise(s, snr=20, repeats=3, seed=0)
    assert n.shape == (6, 20_000)
    assert abs(n.std() - 1 / 20) < 5e-4 and abs(n.mean() - 0.5) < 5e-4
    r = add_noise(np.zeros((1, 20_000)), snr=10, likelihood="rician")
    # the Rician floor: the mean of a magnitude of pure noise is sigma sqrt(pi/2)
    assert abs(r.mean() - 0.1 * np.sqrt(np.pi / 2)) < 2e-3
    with pytest.raises(ValueError, match="snr"):
        add_noise(s, snr=0)


def test_npz_and_zarr_round_trip(db, tmp_path):
    ts = training_set(db)
    p = write_training_set(ts, tmp_path / "set.npz")
    with np.load(p) as z:
        np.testing.assert_array_equal(z["signals"], ts.signals)
        np.testing.assert_array_equal(z["labels"], ts.labels)
        assert list(z["label_names"]) == ts.label_names
    with pytest.raises(ValueError, match=".npz or .zarr"):
        write_training_set(ts, tmp_path / "set.csv")
    zarr = pytest.importorskip("zarr")
    q = write_training_set(ts, tmp_path / "set.zarr")
    g = zarr.open_group(str(q), mode="r")
    np.testing.assert_array_equal(np.asarray(g["labels"]), ts.labels)
    assert list(g.attrs["label_names"]) == ts.label_names
    assert not list(tmp_path.glob(".set.zarr.tmp*"))


def test_cli_exports_a_training_set(db, tmp_path, capsys):
    db_path = tmp_path / "c.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_sweep(SPEC, db_path)
    assert main(["export", str(db_path), "-o", str(tmp_path / "t"), "--format", "training",
                 "--labels", "substrate.icvf,volume_fractions.intra"]) == 0
    with np.load(tmp_path / "t.npz") as z:
        assert list(z["label_names"]) == ["substrate.icvf", "volume_fractions.intra"]
    assert main(["export", str(db_path), "-o", str(tmp_path / "u"), "--format", "training", "--labels", "nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert not (tmp_path / "u.npz").exists()


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_learned_estimator_example_reports_both_in_one_format(tmp_path):
    pytest.importorskip("sklearn")
    from diffwalk.examples import learned_estimator
    db_path, md, png = learned_estimator.run(tmp_path, n_walkers=800, n_steps=200, seeds=(0,), train_repeats=10,
                                             test_repeats=2)
    text = md.read_text()
    assert text.startswith("# A learned estimator") and "## Verdict" in text
    assert "| learned ridge | f |" in text and "| learned MLP | f |" in text and "| stick_zeppelin | f |" in text
    assert "split by row" in text and png.stat().st_size > 20_000
