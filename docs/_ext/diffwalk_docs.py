"""Reference pages generated from the code itself, so that none can drift from it.

- ``api/<package>.rst`` (written when the build starts): one autosummary entry per public name of each
  of the five packages (``__all__``), grouped into functions, classes and constants;
- ``.. diffwalk-cli::`` documents every ``diffwalk`` subcommand from the argparse parser
  (:func:`diffwalk.cli.build_parser`);
- ``.. diffwalk-config::`` every TOML config key from the schema in :mod:`diffwalk.config` (kinds, units,
  accepted spellings, defaults).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from pathlib import Path

from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles
from docutils import nodes


#: package -> (title, introduction) of its API page
PACKAGES = {
    "sequences": ("gradient waveforms, schemes and their files",
                  "Schemes (:class:`sequences.Scheme`) hold gradient waveforms on a time grid, with the b-values, "
                  "b-tensors and the factorised temporal shapes the walker accumulates. Everything is SI: s, T/m, "
                  "s/m^2."),
    "substrates": ("analytic primitives, packings, generated tissue, meshes",
                   "Where the walkers diffuse: planes, cylinders and spheres with their lattices and packings, "
                   "generated axons and cells, imported meshes, with membranes and ground truth. Lengths in m, "
                   "permeabilities in m/s."),
    "walker": ("the random-walk engine",
               "The Monte Carlo engine: :func:`walker.simulate` walks the walkers through a substrate under a "
               "scheme, on the CPU or a CUDA GPU, and returns a :class:`walker.SimulationResult`."),
    "validation": ("exact references, models, fitting, validation",
                   "Exact signals (matrix formalism, Gaussian phase, Callaghan), the catalogue of microstructure "
                   "models, fitting, bias against ground truth, NRV landscapes and regime maps."),
    "diffwalk": ("the application: configs, databases, sweeps, reports",
                 "TOML configs, resumable HDF5 databases, sweeps, validation reports and the ``diffwalk`` "
                 "command line (:doc:`../cli`)."),
}


def public_names(package: str) -> dict[str, list[str]]:
    """The public names of a package (its ``__all__``), as {"functions", "classes", "constants"}."""
    mod = importlib.import_module(package)
    groups = {"functions": [], "classes": [], "constants": []}
    for name in sorted(mod.__all__):
        obj = getattr(mod, name)
        if inspect.ismodule(obj):
            continue
        kind = "classes" if inspect.isclass(obj) else "functions" if callable(obj) else "constants"
        groups[kind].append(name)
    return groups


def api_page(package: str) -> str:
    """reST of the API page of ``package``."""
    title, intro = PACKAGES[package]
    head = f"``{package}``: {title}"
    lines = [head, "=" * len(head), "", f".. module:: {package}", "", intro, ""]
    for kind, names in public_names(package).items():
        if not names:
            continue
        lines += [kind.capitalize(), "-" * len(kind), ""]
        if kind == "constants":
            for name in names:
                lines += [f".. autodata:: {package}.{name}", ""]
        else:
            lines += [".. autosummary::", "   :toctree: generated/", "", *(f"   {n}" for n in names), ""]
    return "\n".join(lines)


def write_api_pages(app, config) -> None:
    """Write ``api/<package>.rst`` for each package (only when changed, so rebuilds stay incremental)."""
    folder = Path(app.srcdir) / "api"
    folder.mkdir(exist_ok=True)
    for package in PACKAGES:
        path = folder / f"{package}.rst"
        text = api_page(package)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def _literal(text: str) -> str:
    return f"``{text}``" if text else ""


def _table(header: list[str], rows: list[list[str]], widths: str = "auto") -> list[str]:
    out = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        out.append(f"   * - {row[0]}")
        out += [f"     - {cell}" for cell in row[1:]]
    return out + [""]


def _escape(text: str) -> str:
    return text.replace("*", r"\*").replace("`", r"\`")


#: a command-line option inside help text (``--fix``, ``-vv``); the lookbehind keeps ranges such as 0--1 out
_OPTION = re.compile(r"(?<![\w`-])(--?[A-Za-z][\w-]*)")


def _help_text(text: str) -> str:
    """Help text as reST: escaped, with every option in literal markup.

    Plain ``--fix`` in running text is turned into an en dash by Sphinx's smart quotes; a literal is not.
    """
    out = []
    # `diffwalk sweep --help` in the help text is a command: one literal, not an escaped quote around one
    for k, part in enumerate(re.split(r"`([^`]+)`", text)):
        out.append(_literal(part) if k % 2 else _OPTION.sub(lambda m: f"``{m.group(1)}``", _escape(part)))
    return "".join(out)


def _argument_rows(sp: argparse.ArgumentParser) -> tuple[list[list[str]], list[list[str]]]:
    """(positional, optional) rows of one subcommand's tables: [argument, meaning, default]."""
    positional, optional = [], []
    for act in sp._actions:
        if isinstance(act, argparse._HelpAction):
            continue
        if not act.help:
            # the page promises every argument: an undocumented one is a bug in build_parser
            raise ValueError(f"{sp.prog}: argument {act.dest!r} has no help text")
        choices = f" (one of {', '.join(map(str, act.choices))})" if act.choices else ""
        if not act.option_strings:
            optional_note = " (optional)" if act.nargs in ("?", "*") else ""
            default = repr(act.default) if act.nargs in ("?", "*") and act.default is not None else ""
            positional.append([_literal(act.metavar or act.dest), _help_text(act.help + choices) + optional_note,
                               _literal(default)])
            continue
        flag = ", ".join(act.option_strings)
        if act.metavar:
            flag += f" {act.metavar}"
        # "is", not "in": a default of 0 (--seed) equals False and was left out
        default = "" if act.default is None or act.default is False or act.default == argparse.SUPPRESS \
            else repr(act.default)
        required = " (required)" if act.required else ""
        optional.append([_literal(flag), _help_text(act.help + choices) + required, _literal(default)])
    return positional, optional


def cli_lines() -> list[str]:
    """reST for every subcommand of the ``diffwalk`` command line."""
    from diffwalk.cli import build_parser

    parser = build_parser()
    lines = ["Usage::", "", *("    " + ln for ln in parser.format_usage().strip().splitlines()), ""]
    lines += _help_text(parser.description or "").splitlines() + [""]
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in subs._choices_actions}
    for name, sp in subs.choices.items():
        title = f"diffwalk {name}"
        lines += [title, "-" * len(title), "", _help_text(helps.get(name) or ""), "", "::", ""]
        lines += ["    " + ln for ln in sp.format_usage().strip().splitlines()] + [""]
        if sp.description:
            lines += _help_text(" ".join(sp.description.split())).splitlines() + [""]
        positional, optional = _argument_rows(sp)
        if positional:
            lines += ["Positional arguments:", ""]
            lines += _table(["argument", "meaning", "default"], positional, "25 60 15")
        if optional:  # `diffwalk info` has none; an empty list-table is a reST error
            lines += ["Options:", ""]
            lines += _table(["option", "meaning", "default"], optional, "25 60 15")
        if sp.epilog:
            # the epilog is preformatted (an example file): a literal block keeps its layout and its quotes
            head, _, body = sp.epilog.partition("\n")
            lines += [_help_text(head.rstrip(":")) + ":", "", "::", ""]
            lines += ["    " + ln if ln.strip() else "" for ln in body.strip("\n").splitlines()] + [""]
    return lines


def config_lines() -> list[str]:
    """reST for every key of a TOML config, its unit and its default."""
    from diffwalk import config
    from diffwalk.quantities import SI_UNIT, UNITS

    def unit(kind: str) -> str:
        base = config.base_kind(kind)
        if base in SI_UNIT:
            table = next((t for t in config.TABLES if kind.endswith(t)), None)
            many = " (one value or a list)" if kind.endswith("*") else \
                " (one value, or one per item as a list)" if kind.endswith("+") else \
                f" (one value or a table {config.TABLES[table][2]})" if table else ""
            others = ", ".join(_literal(u) for u in UNITS[base] if u != SI_UNIT[base])
            return f"{base}: ``{SI_UNIT[base]}``; also {others}{many}"
        return {"float": "plain number", "floats": "number or list of numbers", "int": "whole number >= 0",
                "count": "whole number >= 1", "str": "text", "bool": "true / false", "vector": "[x, y, z]",
                "directions": "count or list of [x, y, z]", "ints": "list of whole numbers >= 0",
                "points": 'list of "x y z unit" texts', "path": "file path, relative to the config file"}[base]

    lines = []
    tables = [(f"[substrate] type = \"{k}\"", config.SUBSTRATE_FIELDS[k], f"substrate.{k}")
              for k in config.SUBSTRATE_FIELDS]
    tables += [(f"[[scheme]] type = \"{k}\"", config.SCHEME_FIELDS[k], f"scheme.{k}") for k in config.SCHEME_FIELDS]
    tables += [("[simulation]", config.SIMULATION_FIELDS, "simulation")]
    tables += [(f"[field] type = \"{k}\"", config.FIELD_FIELDS[k], f"field.{k}") for k in config.FIELD_FIELDS]
    for title, fields, key in tables:
        lines += [title, "-" * len(title), ""]
        if not fields:
            lines += ["No further keys: free space with the diffusivity of ``[simulation]``.", ""]
            continue
        helptab = config.FIELD_HELP[key]
        rows = [[_literal(name), _escape(helptab[name][0]), unit(kind), _escape(helptab[name][1])]
                for name, kind in fields.items()]
        lines += _table(["key", "meaning", "kind and unit", "default"], rows, "15 40 30 15")
    return lines


class _Generated(SphinxDirective):
    has_content = False
    make = staticmethod(lambda: [])

    def run(self):
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(self.make(), source="<diffwalk-generated>"), node)
        return node.children


class CliDirective(_Generated):
    make = staticmethod(cli_lines)


class ConfigDirective(_Generated):
    make = staticmethod(config_lines)


def setup(app):
    app.connect("config-inited", write_api_pages)
    app.add_directive("diffwalk-cli", CliDirective)
    app.add_directive("diffwalk-config", ConfigDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
