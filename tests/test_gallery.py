"""Every lesson of the teaching gallery runs in quick mode and asserts its Monte Carlo-vs-theory agreement."""

import os

import pytest

from diffwalk.cli import main
from diffwalk.lessons import check_agreement, lesson_paths, quick_mode, run_lesson

LESSONS = list(lesson_paths())


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_in_quick_mode_and_agrees_with_theory(name, tmp_path):
    # each lesson raises AssertionError through check_agreement when the simulation leaves its theory
    figures = run_lesson(name, tmp_path, quick=True)
    assert figures and all(p.stat().st_size > 10_000 for p in figures), figures
    assert os.environ.get("DIFFWALK_QUICK") is None       # quick mode does not leak into later tests


def test_gallery_has_the_lessons_the_issue_asks_for():
    assert len(LESSONS) >= 14, LESSONS


def test_check_agreement_fails_outside_the_tolerance_and_names_what():
    assert check_agreement("ok", [1.0], [0.1], [1.4]) < 1
    with pytest.raises(AssertionError, match="cylinder vs MF: 1 of 2"):
        check_agreement("cylinder vs MF", [1.0, 0.5], [0.01, 0.01], [1.0, 0.6])
    with pytest.raises(AssertionError):
        check_agreement("nan", [float("nan")], [0.01], [1.0])
    assert check_agreement("allowance", [1.0], [0.0], [1.05], allowance=0.06) <= 1


def test_quick_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DIFFWALK_QUICK", "1")
    assert quick_mode()
    monkeypatch.setenv("DIFFWALK_QUICK", "0")
    assert not quick_mode()


def test_diffwalk_example_runs_a_lesson_and_lists_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIFFWALK_QUICK", "1")
    assert main(["example", "free_diffusion", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "free_diffusion.png").exists()
    assert main(["example", "--list"]) == 0
    assert "free_diffusion" in capsys.readouterr().out
    assert main(["example", "no_such_lesson"]) == 2


def test_lesson_names_do_not_shadow_examples_and_the_readme_lists_every_lesson():
    from pathlib import Path

    from diffwalk.examples import EXAMPLES
    assert not set(LESSONS) & set(EXAMPLES)          # `diffwalk example NAME` would run the example instead
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in LESSONS), [n for n in LESSONS if f"`{n}`" not in readme]
