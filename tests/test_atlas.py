"""The validity atlas (issue 32, part 3): recipes, the databases and fits they build (resumably), the
leaderboard and its physics, the cost estimate, the DDE protocol tables, and the NRV of every fit."""

from __future__ import annotations

import json
import textwrap
import tomllib
import warnings

import numpy as np
import pytest

import sequences as sq
import validation
from diffwalk import atlas
from diffwalk import config as cfgmod
from diffwalk.cli import main
from diffwalk.quantities import ConfigError

RECIPE = textwrap.dedent("""
    [atlas]
    name = "test"
    version = "0.1"
    snr = [50, 200]
    repeats = 2
    seeds = 1
    tolerance = 0.10
    models = ["stick_zeppelin", "cylinder_gpd", "sphere_gpd", "gamma"]

    [simulation]
    n_walkers = 2000
    n_steps = 1000
    diffusivity = "2 um^2/ms"
    start = "uniform"

    [[protocols.pgse.scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "20 ms"
    bvalues = "0 1000 2000 s/mm^2"
    directions = 10

    [[protocols.pgse.scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "40 ms"
    bvalues = "1000 2000 s/mm^2"
    directions = 10

    [substrates.axons]
    type = "cylinder_lattice"
    radius = "2 um"
    icvf = 0.6
    [substrates.axons.grid]
    radius = ["1.5 um", "3 um"]

    [substrates.cells]
    type = "sphere_lattice"
    radius = "5 um"
    volume_fraction = 0.4
    [substrates.cells.simulation]
    start = "intra"
    """)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas")
    path = out / "recipe.toml"
    path.write_text(RECIPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = atlas.run_atlas(path, out / "out", progress=False)
    return path, res


# ------------------------------------------------------------------ recipes
def _bad(tmp_path, text: str) -> str:
    p = tmp_path / "r.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        atlas.load_recipe(p)
    return str(err.value)


@pytest.mark.parametrize("old, new, words", [
    ('tolerance = 0.10', 'tolerance = 10', ["atlas.tolerance", "not 10 for 10 %"]),
    ('snr = [50, 200]', 'snr = [0]', ["atlas.snr", "positive"]),
    ('repeats = 2', 'repeats = 0', ["atlas.repeats"]),
    ('seeds = 1', 'seed = 1', ["unknown key", "seed"]),
    ('"gamma"]', '"gamma", "no_such_model"]', ["atlas.models", "no_such_model"]),
    ('radius = ["1.5 um", "3 um"]', '"scheme.0.Delta" = ["20 ms"]', ["grid", "protocol is fixed"]),
    ('[substrates.cells]', '[substrates."bad name"]', ["bad name", "letters"]),
])
def test_a_bad_recipe_names_the_key_and_the_fix(tmp_path, old, new, words):
    assert old in RECIPE
    msg = _bad(tmp_path, RECIPE.replace(old, new))
    for w in words:
        assert w in msg


def test_a_bad_substrate_value_is_refused_before_anything_runs(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(RECIPE.replace('volume_fraction = 0.4', 'volume_fraction = "0.4 um"'))
    with pytest.raises(ConfigError, match="substrates.cells"):
        atlas.run_atlas(p, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "databases" / "axons--pgse.h5").exists()


def test_unknown_recipe_lists_the_builtin_ones():
    with pytest.raises(ConfigError, match="small"):
        atlas.load_recipe("no_such_recipe")


def test_builtin_recipes_parse_and_cover_the_issue_axes():
    small, full = atlas.load_recipe("small"), atlas.load_recipe("full")
    for rec in (small, full):
        assert set(rec.protocols) == {"pgse", "ste", "ogse", "dde"}
        types = {e["substrate"]["type"] for e in rec.substrates.values()}
        assert {"packed_cylinders", "packed_axons", "beaded_axons", "sphere_lattice", "somas_with_neurites"} <= types
        axes = {k for e in rec.substrates.values() for k in e["grid"]}
        assert {"substrate.icvf", "substrate.dispersion", "substrate.permeability", "substrate.bead_amplitude",
                "substrate.radius"} <= axes
        for tables in rec.protocols.values():  # every protocol is a valid scheme
            cfgmod.build_scheme(json.loads(json.dumps(tables)))
    assert sum(full.n_rows(s) for s in full.substrates) > 5 * sum(small.n_rows(s) for s in small.substrates)


def test_entry_spec_is_a_sweep_of_the_entry_rows(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(RECIPE)
    rec = atlas.load_recipe(p)
    spec = tomllib.loads(atlas.entry_spec(rec, "axons", "pgse"))
    names, rows = cfgmod.sweep_rows(spec)
    assert names == ["substrate.radius", "seed"] and len(rows) == rec.n_rows("axons") == 2
    assert spec["substrate"]["type"] == "cylinder_lattice" and len(spec["scheme"]) == 2
    assert spec["simulation"]["n_walkers"] == 2000


# ------------------------------------------------------------------ the built atlas
def test_atlas_writes_report_tables_figures_and_databases(built):
    _, res = built
    out = res.outdir
    text = res.report.read_text()
    for section in ("## Leaderboard", "## Refused", "## Cost"):
        assert section in text
    assert (out / "leaderboard.csv").read_text().startswith("quantity,rank,model")
    assert len((out / "atlas_table.csv").read_text().splitlines()) > 5
    assert (out / "figures" / "leaderboard.png").stat().st_size > 10_000
    assert any(p.name.startswith("regime_") for p in (out / "figures").iterdir())
    assert sorted(p.name for p in (out / "databases").glob("*.h5")) == ["axons--pgse.h5", "cells--pgse.h5"]
    # every figure the report names exists
    figures = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert figures and all((out / f).exists() for f in figures)
    # the same report as one HTML page: a table per leaderboard quantity, every figure, text escaped
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<table>") >= len(res.board) + 2
    assert all(f'src="{f}"' in page for f in figures)
    assert "<h2>Leaderboard</h2>" in page and "<P2" not in page


def test_markdown_html_escapes_and_renders_the_report_subset():
    page = atlas.markdown_html(["# T <1>", "", "text **bold** `code` & more", "", "| a | b |", "|---|---|",
                                "| 1 | x<y |", "", "- item", "![fig](f.png)"])
    assert "<h1>T &lt;1&gt;</h1>" in page and "<strong>bold</strong>" in page and "<code>code</code>" in page
    assert "&amp; more" in page and "<th>a</th>" in page and "<td>x&lt;y</td>" in page
    assert "<li>item</li>" in page and 'src="f.png"' in page


def test_refused_models_say_why(built):
    _, res = built
    # gamma needs several b-tensor shapes: a PGSE-only recipe cannot fit it
    assert "gamma" in res.refused and "applies to no protocol" in res.refused["gamma"]
    assert "b-tensor" in res.refused["gamma"] or "shape" in res.refused["gamma"]


def test_leaderboard_physics(built):
    """What the leaderboard says is physics the recipe was built to show.

    - The truth is plumbed through: the axons' intra fraction is the lattice's ICVF (0.6, walkers everywhere)
      and the cells' radius the lattice radius (5 um).
    - Diffusion along impermeable cylinders is free: stick-zeppelin's D_par lands within the 10 % tolerance of
      D0 (its small positive bias is the restricted intra-axonal signal the stick does not describe).
    - On the cell lattice with walkers inside (the sphere model's own geometry), the Gaussian-phase sphere model
      recovers the radius within the tolerance.
    - NRV tells a misspecified model from an adequate one (Lampinen et al. 2020): one restricted cylinder for
      tissue with extra-axonal water sits far above 1, stick-zeppelin near 1.
    """
    _, res = built
    board = res.board
    fits = json.loads((res.outdir / "fits" / "pgse.json").read_text())["entries"]
    f = [e for e in fits if e["model"] == "stick_zeppelin" and e["parameter"] == "f"]
    assert {round(e["truth"], 6) for e in f if e["substrate"] == "axons"} == {0.6}
    r = [e for e in fits if e["model"] == "sphere_gpd" and e["parameter"] == "R" and e["substrate"] == "cells"]
    assert {round(e["truth"] * 1e6, 6) for e in r} == {5.0}
    tol = res.recipe.tolerance
    d = {s.model: s for s in board["cylinder:diffusivity"]}
    assert d["stick_zeppelin"].within >= 0.9 and abs(d["stick_zeppelin"].median_bias) <= tol
    radius = {s.model: s for s in board["sphere:effective_radius"]}
    assert abs(radius["sphere_gpd"].median_bias) <= tol
    assert d["cylinder_gpd"].median_nrv > 3 and d["stick_zeppelin"].median_nrv < 2
    # ranked by the share within tolerance
    for rows in board.values():
        assert [s.within for s in rows] == sorted((s.within for s in rows), reverse=True)


def test_every_model_sees_the_same_noise(built, tmp_path, monkeypatch):
    """One seed per database and SNR: every model fitted to the same measurements gets the same noisy signals
    (the ranking compares models on identical data)."""
    path, res = built
    seen = {}
    real_fit = validation.bias.fit

    def recording_fit(model, scheme, Y, **kw):
        seen.setdefault(model.name, []).append(np.array(Y))
        return real_fit(model, scheme, Y, **kw)

    monkeypatch.setattr(validation.bias, "fit", recording_fit)
    rec = atlas.load_recipe(path)
    fits = atlas.fit_protocol(rec, "pgse", res.outdir, fits_path=tmp_path / "fits.json")
    # one batched fit per SNR level, every row in it
    assert len(seen["stick_zeppelin"]) == len(seen["cylinder_gpd"]) == 2
    assert len(seen["stick_zeppelin"][0]) == 3 * 2  # rows of both substrates x noise realisations
    for a, b in zip(seen["stick_zeppelin"], seen["cylinder_gpd"]):
        assert np.array_equal(a, b)
    e = [e for e in fits["entries"] if e["model"] == "stick_zeppelin" and e["parameter"] == "f"]
    assert all(len(x["estimates"]) == 2 and len(x["nrv"]) == 2 for x in e)


def test_rerun_resumes_without_simulating_or_fitting_again(built, monkeypatch):
    path, res = built
    import walker

    def refuse(*a, **k):
        raise AssertionError("a finished atlas was simulated again")

    def refuse_fit(*a, **k):
        raise AssertionError("a finished atlas was fitted again")

    monkeypatch.setattr(walker, "simulate", refuse)
    monkeypatch.setattr(validation, "bias_table", refuse_fit)
    again = atlas.run_atlas(path, res.outdir, progress=False)
    assert {q: [(s.model, s.within) for s in rows] for q, rows in again.board.items()} == \
        {q: [(s.model, s.within) for s in rows] for q, rows in res.board.items()}


def test_a_fresh_rebuild_gives_the_same_leaderboard_bit_for_bit(built, tmp_path):
    """Seeds in the recipe, per-protocol noise seeds, deterministic fits: a second build from nothing writes the
    same signals, fits and leaderboard."""
    path, res = built
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = atlas.run_atlas(path, tmp_path / "again", progress=False)
    assert (again.outdir / "leaderboard.csv").read_bytes() == (res.outdir / "leaderboard.csv").read_bytes()
    a = json.loads((again.outdir / "fits" / "pgse.json").read_text())["entries"]
    b = json.loads((res.outdir / "fits" / "pgse.json").read_text())["entries"]
    assert a == b


def test_cost_estimate_scales_measured_rates(built):
    _, res = built
    full = atlas.load_recipe("full")
    est = atlas.estimate_cost(full, res.timing)
    assert est["rows"] == sum(full.n_rows(s) for s in full.substrates) * len(full.protocols)
    assert est["walker_steps"] == pytest.approx(est["rows"] * 20000 * 2000)
    assert est["total_hours"] == pytest.approx(est["walk_hours"] + est["fit_hours"])
    # fits: every model measured, at its measured seconds per signal
    per = {m: res.timing["fit_seconds"][m] / res.timing["fit_voxels"][m] for m in res.timing["fit_seconds"]}
    fits = est["rows"] * full.repeats * len(full.snr) * sum(per.values()) / 3600
    assert est["fit_hours"] == pytest.approx(fits)


def test_cli_lists_estimates_and_refuses(built, tmp_path, capsys):
    _, res = built
    assert main(["atlas", "--list"]) == 0
    assert "small" in capsys.readouterr().out
    assert main(["atlas", "small", "--estimate-from", str(res.outdir)]) == 0
    assert "rows" in capsys.readouterr().out
    assert main(["atlas", "small", "--estimate-from", str(tmp_path)]) == 2
    assert "atlas.json" in capsys.readouterr().err
    assert main(["atlas", "no_such_recipe", "--out", str(tmp_path)]) == 2
    assert "built-in" in capsys.readouterr().err


# ------------------------------------------------------------------ NRV of every fit
def test_nrv_of_a_correct_model_is_one():
    """Stick-zeppelin fitted to its own signal plus Gaussian noise: the mean NRV over 400 fits is 1 within 4.5
    standard errors (each fit's NRV has SD sqrt(2 / (N - P)))."""
    u = sq.fibonacci_directions(20)
    s = sq.pgse(10e-3, 30e-3, bvalues=np.concatenate([[0], np.repeat([1e9, 2e9], 20)]),
                directions=np.vstack([[0, 0, 1.0], u, u]))
    m = validation.get_model("stick_zeppelin")
    P = np.array([[0.6, 2e-9, 0.7e-9, 0.3, 0.5]])
    y = m.signal(s, P)
    gt = {"volume_fractions": {"intra": 0.6}}
    table = validation.bias_table(s, y, [gt], models=["stick_zeppelin"], snr=50, repeats=400, seed=3)
    nrv = np.array(table[0]["nrv"])
    n, p = len(s), len(m.parameters)
    assert abs(nrv.mean() - 1) <= 4.5 * np.sqrt(2 / (n - p)) / np.sqrt(nrv.size)


# ------------------------------------------------------------------ DDE protocol tables
def _dde_job(second: str, bvalues: str = "0 1000 2000 s/mm^2"):
    return cfgmod.parse_job(tomllib.loads(textwrap.dedent(f"""
        [substrate]
        type = "free"
        [[scheme]]
        type = "dde"
        delta = "8 ms"
        Delta = "20 ms"
        mixing_time = "10 ms"
        bvalues = "{bvalues}"
        directions = 4
        second = "{second}"
        [simulation]
        n_walkers = 100
        diffusivity = "2 um^2/ms"
        """)))


@pytest.mark.parametrize("second, count", [("parallel", 9), ("perpendicular", 9), ("both", 17)])
def test_dde_table_pairs(second, count):
    s = _dde_job(second).scheme
    assert len(s) == count and np.sum(s.bvalues == 0) == 1
    for B, b in zip(s.btensors, s.bvalues):
        ev = np.sort(np.linalg.eigvalsh(B))
        assert ev.sum() == pytest.approx(b, rel=1e-6, abs=1e3)
        if b > 0:
            # B = b/2 (u1 u1 + u2 u2): rank 1 with eigenvalue b (parallel), two of b/2 (perpendicular)
            expect = [0, 0, b] if second == "parallel" else [0, b / 2, b / 2] if second == "perpendicular" else None
            if expect is not None:
                assert ev == pytest.approx(expect, rel=1e-6, abs=1e-6 * b)


def test_dde_second_block_is_checked():
    with pytest.raises(ConfigError, match="second.*parallel"):
        _dde_job("diagonal", "1000 s/mm^2")
