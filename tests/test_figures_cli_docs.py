"""The first hour (issue 28): figures that read, error bars that say what they are, a CLI reference that
renders, and ``diffwalk validate --method dictionary --fix MODEL.PARAM=VALUE``."""

from __future__ import annotations

import ast
import re
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from diffwalk import config as cfgmod
from diffwalk.cli import SWEEP_EXAMPLE, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _sources() -> list[Path]:
    """Every gallery lesson and example."""
    return (sorted((ROOT / "diffwalk" / "gallery").glob("plot_*.py"))
            + sorted((ROOT / "diffwalk" / "examples").glob("*.py")))


# ------------------------------------------------------------------ 1. waveforms.png
@pytest.fixture(scope="module")
def waveform_figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffwalk.examples import waveforms
    scheme = waveforms.build_protocol()
    fig = waveforms.make_figure(scheme)
    fig.canvas.draw()
    yield scheme, fig
    plt.close(fig)


def _axes_titled(fig, fragment: str):
    return next(ax for ax in fig.axes if fragment in ax.get_title())


def test_the_spectrum_axis_ends_where_the_spectra_have_their_power(waveform_figure):
    from diffwalk.examples.waveforms import spectrum_fmax
    scheme, fig = waveform_figure
    ax = _axes_titled(fig, "encoding power spectrum")
    fmax = ax.get_xlim()[1]
    assert fmax == spectrum_fmax(scheme, [0, 1, 2]) <= 150.0  # it ran to 300 Hz, all of it below 100
    f, power = scheme.spectrum()
    keep = f <= fmax
    for m in (0, 1, 2):  # 99 % of each b is inside the axis, by Parseval
        assert np.trapezoid(power[m, keep], f[keep]) / np.trapezoid(power[m], f) >= 0.99


def test_every_measurement_has_a_glyph_with_few_ticks(waveform_figure):
    scheme, fig = waveform_figure
    glyphs = [ax for ax in fig.axes if ax.name == "3d"]
    assert len(glyphs) == len(scheme) == 4  # OGSE had none
    assert any("ogse" in ax.get_title() for ax in glyphs)
    for ax in glyphs:
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            assert len([t for t in axis.get_ticklabels() if t.get_text()]) <= 2  # seven overlapped


def test_b_tensor_points_are_all_visible(waveform_figure):
    scheme, fig = waveform_figure
    ax = _axes_titled(fig, "b-tensor shape")
    legend = ax.get_legend().get_window_extent()
    offsets = {c.get_label(): (c, ax.transData.transform(c.get_offsets())) for c in ax.collections
               if c.get_label() and not c.get_label().startswith("_")}
    assert len(offsets) == len(scheme)
    for label, (_, xy) in offsets.items():  # the legend covered the STE point
        assert not any(legend.contains(x, y) for x, y in xy), label
    # PGSE and OGSE share (b, b_Delta): the one drawn first must show round the one drawn over it
    (pg, pg_xy), (og, og_xy) = offsets["#0 pgse"], offsets["#1 ogse-cos"]
    assert np.allclose(pg_xy, og_xy)
    assert pg.get_sizes()[0] > 2 * og.get_sizes()[0]
    face = pg.get_facecolors()
    assert len(face) == 0 or face[0][3] == 0  # an open ring


def test_the_waveforms_example_writes_its_figure(tmp_path):
    from diffwalk.examples import run_example
    (path,) = run_example("waveforms", str(tmp_path))
    assert path.stat().st_size > 10_000


# ------------------------------------------------------------------ 2. error bars and units in the figures
#: "± 4.5 SE", "±1 SE", "± 2 SD", "4.5 standard errors", "4.5-SE bars"
_STATEMENT = re.compile(r"(?:±\s*)?(\d+(?:\.\d+)?)[\s-]*(SE|SD|standard errors?|standard deviations?)\b")


def _calls(tree: ast.AST, name: str):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == name]


def _multiplier(call: ast.Call) -> float | None:
    """K of ``yerr=K * se`` (1 for a bare ``yerr=se``); None where the call has no error bars."""
    yerr = next((k.value for k in call.keywords if k.arg in ("yerr", "xerr")), None)
    if yerr is None or isinstance(yerr, ast.List) and not yerr.elts:
        return None
    return _factor(yerr)


def _factor(node: ast.AST) -> float:
    """The leading factor of a product: 4.5 in ``4.5 * se / width * 1e-6`` (a trailing one is a unit); of a
    comprehension, its element's; of ``[lower, upper]`` bars, the larger."""
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        return _factor(node.elt)
    if isinstance(node, (ast.List, ast.Tuple)):
        return max(_factor(e) for e in node.elts)
    while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
        node = node.left
    return float(node.value) if isinstance(node, ast.Constant) else 1.0


def _strings(tree: ast.AST, first: int, last: int) -> str:
    """The text of every string literal (f-strings too) on source lines first..last."""
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and first <= node.lineno <= last:
            parts.append(node.value)
    return " ".join(parts)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
def test_every_error_bar_says_how_many_standard_errors_it_spans(path):
    """Each ``errorbar`` is within a few lines of a legend or axis label that states its multiple of the SE
    (or SD), and that multiple is the one in ``yerr=``: 4.5 SE in one figure and 1 SE in another, unsaid, had
    read as the same bars."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    unsaid = []
    for call in _calls(tree, "errorbar"):
        k = _multiplier(call)
        if k is None:
            continue
        near = _strings(tree, call.lineno - 30, call.end_lineno + 30)
        stated = {float(m.group(1)) for m in _STATEMENT.finditer(near)}
        if k not in stated:
            unsaid.append(f"{path.name}:{call.lineno}: yerr = {k:g} x SE, nothing near says '± {k:g} SE' "
                          f"(found {sorted(stated)})")
    assert not unsaid, "\n".join(unsaid)


#: a length unit written in ASCII inside a figure label: "(um)", " um ", "um²", "um^2", "um/ms"
_ASCII_MICRON = re.compile(r"(?<![A-Za-z])um(?![A-Za-z])")
_LABEL_CALLS = {"set_xlabel", "set_ylabel", "set_title", "suptitle", "supxlabel", "supylabel", "text",
                "annotate", "legend", "set", "plot", "errorbar", "scatter", "fill_between", "axhline",
                "axvline", "bar", "hist", "step", "stairs", "loglog", "semilogx", "semilogy", "imshow",
                "contour", "contourf", "colorbar", "set_label"}


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
def test_figure_labels_write_micrometres_as_um_sign(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # only strings inside figure calls: config strings ("3 um") given to a simulation are input, not labels
    ascii_um = sorted({f"{path.name}:{node.lineno}: {node.value!r} in {name}()"
                       for name in _LABEL_CALLS for call in _calls(tree, name) for node in ast.walk(call)
                       if isinstance(node, ast.Constant) and isinstance(node.value, str)
                       and _ASCII_MICRON.search(node.value)})
    assert not ascii_um, "write µm:\n" + "\n".join(ascii_um)


def test_lessons_print_the_unit_of_what_they_compare(capsys):
    from diffwalk.lessons import check_agreement
    check_agreement("mean residence time", [0.101], [0.001], [0.1], unit="s")
    assert "max |difference| = 0.001 s)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"measured 0\.2 m \+- 0\.001 m \(SE\), reference 0\.1 m"):
        check_agreement("radius", [0.2], [0.001], [0.1], unit="m")


# ------------------------------------------------------------------ 3. the CLI reference
def _docs_extension():
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import diffwalk_docs
    finally:
        sys.path.pop(0)
    return diffwalk_docs


@pytest.fixture(scope="module")
def cli_rst() -> str:
    return "\n".join(_docs_extension().cli_lines())


def test_the_cli_reference_renders_options_without_en_dashes(cli_rst):
    from docutils.core import publish_string
    # smart quotes on, as Sphinx has them: plain "--local" in help text became "–local"
    html = publish_string(cli_rst, writer="html",
                          settings_overrides={"smart_quotes": True, "halt_level": 2, "report_level": 5}).decode()
    assert "\u2013" not in html and "\u2014" not in html
    assert "<span class=\"pre\">--fix</span>" in html or "--fix" in html


def test_the_cli_reference_documents_every_argument_with_its_help(cli_rst):
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sp in subs.choices.items():
        section = cli_rst.split(f"diffwalk {name}\n", 1)[1].split("\ndiffwalk ", 1)[0]
        for act in sp._actions:
            if act.dest == "help":
                continue
            assert act.help, f"diffwalk {name}: {act.dest} has no help"
            label = act.option_strings[0] if act.option_strings else act.dest
            assert f"``{label}" in section, (name, label)
            if not act.option_strings:  # the positional arguments were listed without a word on them
                assert "Positional arguments:" in section
                first_words = " ".join(act.help.split()[:3])
                assert first_words in section, (name, act.dest)


def test_sweep_help_says_what_a_spec_holds_with_an_example(cli_rst, capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "see diffwalk/config.py" not in out and "[sweep.grid]" in out and '"substrate.radius"' in out
    section = cli_rst.split("diffwalk sweep\n", 1)[1].split("\ndiffwalk ", 1)[0]
    assert '"substrate.radius" = ["2 um", "4 um"]' in section and "8 rows" in section
    # the example in the help is a spec that runs: the rows it promises
    spec = tomllib.loads(textwrap.dedent(SWEEP_EXAMPLE.split("\n", 1)[1]))
    names, rows = cfgmod.sweep_rows(spec)
    assert names == ["substrate.radius", "substrate.icvf", "seed"] and len(rows) == 8
    cfgmod.parse_job(rows[0]["config"])


# ------------------------------------------------------------------ 3. validate --method dictionary --fix
SPEC = textwrap.dedent("""
    [substrate]
    type = "cylinder_lattice"
    radius = "3 um"
    icvf = 0.6

    [[scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "30 ms"
    bvalues = "0 1000 2000 s/mm^2"
    directions = 6

    [simulation]
    n_walkers = 100
    n_steps = 20
    diffusivity = "2 um^2/ms"
    start = "uniform"
    seed = 3
""")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    d = tmp_path_factory.mktemp("db")
    (d / "c.toml").write_text(SPEC)
    assert main(["simulate", str(d / "c.toml"), "-o", str(d / "c.h5")]) == 0
    return d / "c.h5"


def test_validate_fits_noddi_by_dictionary_with_d_par_fixed(database, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["validate", str(database), "--report", str(out), "--models", "noddi_watson", "--method",
                 "dictionary", "--fix", "noddi_watson.d_par=1.7e-9", "--repeats", "1", "--jobs", "1"]) == 0
    text = (out / "report.md").read_text()
    models_row = next(line for line in text.splitlines() if line.startswith("| noddi_watson | yes |"))
    assert "| dictionary |" in models_row
    d_par = next(line for line in text.splitlines() if re.match(r"\| \d+ \| noddi_watson \| d_par \|", line))
    assert "| 1.7 |" in d_par  # held at 1.7 um^2/ms (the table's unit) in every fit


@pytest.mark.parametrize("fix,fragment", [
    ("noddi_watson.d_par", "--fix noddi_watson.d_par: expected MODEL.PARAM=VALUE in SI units"),
    ("d_par=1.7e-9", "--fix d_par=1.7e-9: expected MODEL.PARAM=VALUE"),
    ("noddi_watson.d_perp=1e-9", "noddi_watson has no parameter 'd_perp'"),
    ("noddi_watson.d_par=fast", "d_par must be a number in m^2/s (SI)"),
    ("noddi_watson.d_par=1.7", "d_par must be a number in m^2/s (SI) within [0, 3.5e-09]"),
    ("stick_zeppelin.f=0.5", "stick_zeppelin is not among --models noddi_watson"),
    ("nope.x=1", "unknown model 'nope'"),
    (None, "add --fix noddi_watson.d_par=1.7e-9"),
])
def test_a_bad_fix_is_refused_in_one_line(database, tmp_path, capsys, fix, fragment):
    out = tmp_path / "report"
    argv = ["validate", str(database), "--report", str(out), "--models", "noddi_watson", "--method", "dictionary"]
    assert main(argv + (["--fix", fix] if fix else [])) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("diffwalk ")]
    assert len(lines) == 1 and fragment in lines[0], lines
    assert not out.exists()
