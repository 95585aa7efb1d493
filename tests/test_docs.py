"""The documentation site builds warning-free (gallery not executed, as in CI) and covers every public name,
every CLI subcommand and every config key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffwalk import config
from diffwalk.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sequences", "substrates", "walker", "validation", "diffwalk")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("sphinx_gallery")
    pytest.importorskip("numpydoc")
    pytest.importorskip("pydata_sphinx_theme")
    out = tmp_path_factory.mktemp("html")
    env = {**os.environ, "DIFFWALK_DOCS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-D", "plot_gallery=0", "docs", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out


def test_site_builds_without_warnings_and_has_its_pages(site):
    for page in ("index", "getting_started", "concepts/index", "concepts/steps", "cli", "config",
                 "api/index", "auto_examples/index"):
        assert (site / f"{page}.html").exists(), page


def test_api_reference_has_every_public_name(site):
    import importlib
    import inspect
    missing = []
    for package in PACKAGES:
        mod = importlib.import_module(package)
        page = (site / "api" / f"{package}.html").read_text(encoding="utf-8")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.ismodule(obj):
                continue
            if callable(obj):
                if not (site / "api" / "generated" / f"{package}.{name}.html").exists():
                    missing.append(f"{package}.{name}")
            elif f"{package}.{name}" not in page:
                missing.append(f"{package}.{name}")
    assert not missing, missing


def test_cli_and_config_references_cover_every_subcommand_and_key(site):
    cli = (site / "cli.html").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    for name in sub.choices:
        assert f"diffwalk {name}" in cli, name
    cfg = (site / "config.html").read_text(encoding="utf-8")
    for table in (*config.SUBSTRATE_FIELDS.values(), *config.SCHEME_FIELDS.values(), config.SIMULATION_FIELDS):
        for key in table:
            assert f">{key}<" in cfg, key


def test_every_config_key_has_help_and_defaults_match_the_code():
    import inspect

    import sequences
    import substrates
    import walker
    for kind, fields in config.SUBSTRATE_FIELDS.items():
        assert set(fields) == set(config.FIELD_HELP.get(f"substrate.{kind}", {})), kind
    for kind, fields in config.SCHEME_FIELDS.items():
        assert set(fields) == set(config.FIELD_HELP[f"scheme.{kind}"]), kind
    assert set(config.SIMULATION_FIELDS) == set(config.FIELD_HELP["simulation"])
    # the defaults the reference states are the functions' own where the names match
    sim = inspect.signature(walker.simulate).parameters
    for key in ("n_walkers", "n_steps", "seed"):
        assert config.FIELD_HELP["simulation"][key][1] == str(sim[key].default), key
    assert config.FIELD_HELP["scheme.tensor"]["duration"][1] == \
        f"{inspect.signature(sequences.tensor_encoding).parameters['duration'].default * 1e3:g} ms"
    for kind in ("cylinder_lattice", "sphere_lattice"):
        default = inspect.signature(getattr(substrates, kind)).parameters["lattice"].default
        assert config.FIELD_HELP[f"substrate.{kind}"]["lattice"][1] == f'"{default}"', kind


def test_every_public_docstring_is_numpy_style_with_every_parameter_and_return_documented():
    # numpydoc's own validator over every public function, class and public method of the five packages:
    # GL08 no docstring, PR01 a parameter left out, PR02 a documented parameter that does not exist,
    # RT01 no Returns section
    pytest.importorskip("numpydoc", reason="the docs extra is not installed (pip install -e '.[docs]')")
    import functools
    import importlib
    import inspect

    from numpydoc.validate import get_doc_object, validate

    def targets():
        for package in PACKAGES:
            mod = importlib.import_module(package)
            for name in mod.__all__:
                obj = getattr(mod, name)
                if inspect.isclass(obj):
                    yield f"{package}.{name}", obj
                    for member, value in vars(obj).items():
                        if not member.startswith("_") and inspect.isfunction(value):
                            yield f"{package}.{name}.{member}", getattr(obj, member)
                elif callable(obj) and not inspect.ismodule(obj):
                    yield f"{package}.{name}", obj

    problems = []
    for qualname, obj in targets():
        if isinstance(obj, functools.partial):
            continue
        errors = validate(get_doc_object(obj))["errors"]
        problems += [f"{qualname}: {code} {msg}" for code, msg in errors if code in ("GL08", "PR01", "PR02", "RT01")]
    assert not problems, "\n".join(problems)


ENTRY_POINTS = ("walker.simulate", "sequences.pgse", "sequences.tensor_encoding", "substrates.packed_axons",
                "substrates.from_mesh", "validation.fit", "diffwalk.open_database")


@pytest.mark.parametrize("qualname", ENTRY_POINTS)
def test_main_entry_points_have_examples_that_run(qualname, tmp_path, monkeypatch):
    import doctest
    import importlib

    package, name = qualname.split(".")
    obj = getattr(importlib.import_module(package), name)
    tests = doctest.DocTestFinder(recurse=False).find(obj, qualname, globs={})
    assert tests and tests[0].examples, f"{qualname} has no Examples section"
    monkeypatch.chdir(tmp_path)             # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0, qualname
