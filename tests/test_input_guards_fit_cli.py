"""Nonsense input to the fits, the sweep configs and the CLI gets a clear error naming the argument (issue 28)."""

import textwrap

import numpy as np
import pytest

import sequences as sq
import validation as va
from diffwalk import config as cfgmod
from diffwalk.cli import main
from diffwalk.quantities import ConfigError
from walker import cuda_backend

SCHEME = sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9, 2e9], [1, 10, 10]),
                 directions=np.vstack([[0, 0, 1], sq.fibonacci_directions(10), sq.fibonacci_directions(10)]))
DTI = va.get_model("dti").signal(SCHEME, [[1.5e-9, 1e-9, 0.5e-9, 0, 0, 0]])
SZ = va.get_model("stick_zeppelin").signal(SCHEME, [[0.6, 2e-9, 0.6e-9, 0.7, 0.3]])
GT = [{"intra_fraction": 0.6}]

BASE = textwrap.dedent("""
    [substrate]
    type = "cylinder_lattice"
    radius = "3 um"
    icvf = 0.6

    [[scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "30 ms"
    bvalues = "0 1000 s/mm^2"
    directions = 3

    [simulation]
    n_walkers = 100
    n_steps = 20
    diffusivity = "2 um^2/ms"
    start = "uniform"
    seed = 3
""")


def _cli_error(err: str) -> str:
    """The CLI's one error line; asserts there is exactly one and no traceback of the error (log records of
    earlier tests may fail to print to a closed capture stream: not this command's output)."""
    lines = [line for line in err.splitlines() if line.startswith("diffwalk ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err.replace("--- Logging error ---\nTraceback", ""), err
    return lines[0]


# ------------------------------------------------------------------ 1. a scheme that is not a Scheme
@pytest.mark.parametrize("call", [
    lambda: va.fit("dti", SCHEME.bvalues, DTI),
    lambda: va.fit("wmti", SCHEME.bvalues, DTI),
    lambda: va.bias_table(SCHEME.bvalues, SZ, GT, models=["stick_zeppelin"]),
    lambda: va.nrv_landscape("stick_zeppelin", SCHEME.bvalues, SZ[0], "f", repeats=2, grid=[0.5, 0.6]),
    lambda: va.get_model("dti").signal(SCHEME.bvalues, [[1.5e-9, 1e-9, 0.5e-9, 0, 0, 0]]),
], ids=["fit", "fit_via", "bias_table", "nrv_landscape", "signal"])
def test_a_non_scheme_is_refused_with_how_to_build_one(call):
    with pytest.raises(TypeError, match=r"scheme must be a sequences\.Scheme, not ndarray.*sequences\.pgse"):
        call()


# ------------------------------------------------------------------ 2. signals that are no normalised signals
@pytest.mark.parametrize("model", ["dti", "stick_zeppelin"])
@pytest.mark.parametrize("signals,match", [
    (np.zeros_like(DTI), "signals: every row is zero or negative"),
    (-DTI, "signals: every row is zero or negative"),
    (1000 * DTI, "signals look unnormalised.*divide each voxel's signals by its mean b = 0 signal"),
    (DTI[None], r"signals have shape \(1, 1, 21\)"),
    ("abc", r"signals must be an \(N, 21\)"),
])
def test_nonsense_signals_are_refused(model, signals, match):
    with pytest.raises(ValueError, match=match):
        va.fit(model, SCHEME, signals)


def test_one_bad_voxel_is_marked_failed_not_the_batch():
    rng = np.random.default_rng(0)
    Y = np.repeat(DTI, 3, axis=0) + rng.normal(0, 0.02, (3, DTI.shape[1]))
    Y[1] = 0.0
    with pytest.warns(RuntimeWarning, match=r"signals: 1 of 3 rows are zero or negative.*rows \[1\]"):
        r = va.fit("dti", SCHEME, Y)
    assert r.success.tolist() == [True, False, True]


def test_noisy_high_b_values_below_zero_are_legitimate():
    """Gaussian noise around a signal decayed to ~0 gives negative values: not refused, not marked failed."""
    y = DTI.copy()
    y[0, 11:] = np.random.default_rng(1).normal(0, 0.02, 10)
    assert (y < 0).any()
    assert va.fit("dti", SCHEME, y).success.all()


# ------------------------------------------------------------------ 3. sweeping one entry of a single value
@pytest.mark.parametrize("field,value,key,entry", [
    ("simulation", 't2 = "80 ms"', "simulation.t2.myelin", '["10 ms", "20 ms"]'),
    ("simulation", None, "simulation.diffusivity.intra", '["1 um^2/ms"]'),
    ("substrate", 'permeability = "1e-5 m/s"', "substrate.permeability.outward", '["1e-5 m/s"]'),
])
def test_sweeping_an_entry_of_a_single_value_names_the_key_and_the_table(field, value, key, entry):
    import tomllib
    text = BASE.replace(f"[{field}]", f"[{field}]\n{value}") if value else BASE
    text += f'\n[sweep]\nseeds = [0]\n[sweep.grid]\n"{key}" = {entry}\n'
    name = key.split(".")[1]
    with pytest.raises(ConfigError, match=rf"'{key}' sweeps one entry of {field}\.{name}.*make it a table, "
                                          rf"{name} = \{{"):
        cfgmod.sweep_rows(tomllib.loads(text))


def test_cli_sweep_of_a_t2_entry_is_one_line(tmp_path, capsys):
    spec = tmp_path / "t2.toml"
    spec.write_text(BASE.replace("seed = 3", 'seed = 3\nt2 = "80 ms"')
                    + '\n[sweep]\nseeds = [0]\n[sweep.grid]\n"simulation.t2.myelin" = ["10 ms"]\n')
    assert main(["sweep", str(spec), "-o", str(tmp_path / "t2.h5")]) == 2
    assert "t2 = {myelin = ..." in _cli_error(capsys.readouterr().err)
    assert not (tmp_path / "t2.h5").exists()


# ------------------------------------------------------------------ 4. backend = "cuda" without a GPU
def test_cli_cuda_backend_without_a_gpu_is_one_line_and_leaves_no_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cuda_backend, "available", lambda: False)
    cfg = tmp_path / "cuda.toml"
    cfg.write_text(BASE.replace("seed = 3", 'seed = 3\nbackend = "cuda"'))
    out = tmp_path / "cuda.h5"
    assert main(["simulate", str(cfg), "-o", str(out)]) == 2
    err = _cli_error(capsys.readouterr().err)
    assert "backend = 'cuda'" in err and 'backend = "cpu"' in err
    assert not out.exists() and list(tmp_path.iterdir()) == [cfg]


def test_cli_gpus_without_a_gpu_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cuda_backend, "available", lambda: False)
    spec = tmp_path / "s.toml"
    spec.write_text(BASE + "\n[sweep]\nseeds = [0]\n")
    assert main(["sweep", str(spec), "-o", str(tmp_path / "s.h5"), "--gpus", "1"]) == 2
    assert "--gpus: no usable CUDA device" in _cli_error(capsys.readouterr().err)
    assert not (tmp_path / "s.h5").exists()


# ------------------------------------------------------------------ by class: every entry point's arguments
def _regime(point, **kw):
    return lambda: va.regime_map("stick_zeppelin", "f", point, [1.0], [1.0], **kw)


ARGUMENTS = {
    "fit sigma negative": (lambda: va.fit("dti", SCHEME, DTI, method="ml", sigma=-0.1), ValueError, "sigma = -0.1"),
    "fit sigma nan": (lambda: va.fit("dti", SCHEME, DTI, method="ml", sigma=np.nan), ValueError, "sigma = nan"),
    "fit sigma str": (lambda: va.fit("dti", SCHEME, DTI, method="ml", sigma="a"), TypeError, "sigma must be a number"),
    "fit n_jobs 0": (lambda: va.fit("stick_zeppelin", SCHEME, SZ, n_jobs=0), ValueError, "n_jobs = 0"),
    "fit n_jobs str": (lambda: va.fit("stick_zeppelin", SCHEME, SZ, n_jobs="2"), ValueError, "n_jobs = '2'"),
    "fit n_refine 0": (lambda: va.fit("stick_zeppelin", SCHEME, SZ, n_refine=0), ValueError, "n_refine = 0"),
    "fit model int": (lambda: va.fit(3, SCHEME, DTI), TypeError, "model must be a model name"),
    "methods model int": (lambda: va.available_methods(3), TypeError, "model must be a model name"),
    "fit fixed list": (lambda: va.fit("dti", SCHEME, DTI, fixed=["Dxx"]), TypeError, "fixed must be a dict"),
    "fit fixed str": (lambda: va.fit("stick_zeppelin", SCHEME, SZ, fixed={"f": "a"}), ValueError, r"fixed\['f'\]"),
    "fit fixed nan": (lambda: va.fit("stick_zeppelin", SCHEME, SZ, fixed={"f": np.nan}), ValueError, r"fixed\['f'\]"),
    "bias short signals": (lambda: va.bias_table(SCHEME, SZ[:, :-1], GT, models=["stick_zeppelin"]), ValueError,
                           r"signals have shape \(1, 20\); expected \(rows, 21\)"),
    "bias ground truths": (lambda: va.bias_table(SCHEME, np.repeat(SZ, 2, 0), GT, models=["stick_zeppelin"]),
                           ValueError, "ground_truths has 1 entries but signals has 2 rows"),
    "bias snr negative": (lambda: va.bias_table(SCHEME, SZ, GT, models=["stick_zeppelin"], snr=-5), ValueError,
                          "snr = -5"),
    "bias repeats 0": (lambda: va.bias_table(SCHEME, SZ, GT, models=["stick_zeppelin"], repeats=0), ValueError,
                       "repeats must be a whole number"),
    "bias models str": (lambda: va.bias_table(SCHEME, SZ, GT, models="stick_zeppelin"), TypeError,
                        "models must be a list of model names"),
    "bias n_jobs 0": (lambda: va.bias_table(SCHEME, SZ, GT, models=["stick_zeppelin"], n_jobs=0), ValueError,
                      "n_jobs = 0"),
    "report models str": (lambda: va.make_report(va.SignalSet(SCHEME, SZ, 0 * SZ, GT, np.arange(1)), "/nonexistent/x",
                                                 models="dti"), TypeError, "models must be a list"),
    "nrv short signal": (lambda: va.nrv_landscape("stick_zeppelin", SCHEME, SZ[0, :-1], "f", repeats=2, grid=[0.5]),
                         ValueError, r"signal has shape \(20,\); expected \(21,\)"),
    "nrv 2-d signal": (lambda: va.nrv_landscape("stick_zeppelin", SCHEME, np.repeat(SZ, 2, 0), "f", repeats=2,
                                                grid=[0.5]), ValueError, r"signal has shape \(2, 21\)"),
    "nrv snr 0": (lambda: va.nrv_landscape("stick_zeppelin", SCHEME, SZ[0], "f", snr=0, repeats=2, grid=[0.5]),
                  ValueError, "snr = 0"),
    "nrv repeats 0": (lambda: va.nrv_landscape("stick_zeppelin", SCHEME, SZ[0], "f", repeats=0, grid=[0.5]),
                      ValueError, "repeats must be a whole number"),
    "nrv grid nan": (lambda: va.nrv_landscape("stick_zeppelin", SCHEME, SZ[0], "f", repeats=2, grid=[np.nan, 0.6]),
                     ValueError, "grid must be a non-empty 1-D array of finite values"),
    "nrv grid empty": (lambda: va.nrv_landscape("stick_zeppelin", SCHEME, SZ[0], "f", repeats=2, grid=[]),
                       ValueError, "grid must be a non-empty"),
    "regime truth 0": (_regime(lambda x, y: (SCHEME, SZ[0], 0.0, None)), ValueError, "truth = 0.0 for f"),
    "regime not callable": (_regime(3), TypeError, "signal_at must be a function"),
    "regime returns 2": (_regime(lambda x, y: (SCHEME, SZ[0])), ValueError, "must return .*got tuple of 2 items"),
    "regime repeats 0": (_regime(lambda x, y: (SCHEME, SZ[0], 0.6, None), snr=50, repeats=0), ValueError,
                         "repeats must be a whole number"),
    "regime snr negative": (_regime(lambda x, y: (SCHEME, SZ[0], 0.6, None), snr=-50), ValueError, "snr = -50"),
}


@pytest.mark.parametrize("call,error,match", ARGUMENTS.values(), ids=ARGUMENTS.keys())
def test_entry_points_name_the_bad_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    d = tmp_path_factory.mktemp("db")
    (d / "c.toml").write_text(BASE)
    assert main(["simulate", str(d / "c.toml"), "-o", str(d / "c.h5")]) == 0
    return d / "c.h5"


@pytest.mark.parametrize("argv,fragment", [
    (["validate", "{db}", "--report", "{out}", "--models", "dti", "--repeats", "0"], "repeats must be a whole number"),
    (["validate", "{db}", "--report", "{out}", "--models", "dti", "--jobs", "0"], "n_jobs = 0"),
    (["validate", "{db}", "--report", "{out}", "--models", "dti", "--snr", "-5"], "snr = -5.0"),
    (["validate", "{db}", "--report", "{out}", "--nrv", "stick_zeppelin"], "--nrv stick_zeppelin: expected MODEL.PARAM"),
    (["validate", "{db}", "--report", "{out}", "--models", "nope"], "validate: unknown model 'nope'"),
    (["sweep", "{spec}", "-o", "{out}.h5", "--local", "0"], "local (--local) must be a whole number"),
])
def test_cli_arguments_are_refused_in_one_line(database, tmp_path, capsys, argv, fragment):
    spec = tmp_path / "s.toml"
    spec.write_text(BASE + "\n[sweep]\nseeds = [0]\n")
    out = tmp_path / "out"
    argv = [a.format(db=database, out=out, spec=spec) for a in argv]
    assert main(argv) == 2
    assert fragment in _cli_error(capsys.readouterr().err)
    assert not out.exists() and not (tmp_path / "out.h5").exists()
