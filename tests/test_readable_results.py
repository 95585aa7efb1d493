"""The first hour, continued (issue 28): results print as a summary, and shells of directions are explicit."""

import re
from pathlib import Path

import numpy as np
import pytest

import sequences as sq
import substrates as su
import walker

ROOT = Path(__file__).resolve().parents[1]


def test_a_result_prints_as_one_line_not_its_arrays():
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9, 2e9], directions=np.eye(3))
    r = walker.simulate(su.cylinder(4e-6), s, n_walkers=300, n_steps=1200, diffusivity=2e-9, seed=1)
    text = repr(r)
    assert "\n" not in text and len(text) < 200, text
    assert "cylinder" in text and "300 walkers x 1200 steps" in text and "3 measurements" in text
    assert "escapes 0" in text and str(r) == text


def test_shells_put_every_direction_at_every_b():
    u = sq.fibonacci_directions(5)
    b, d = sq.shells([0, 1e9, 0, 3e9], u)
    assert b.tolist() == [0.0] + [1e9] * 5 + [0.0] + [3e9] * 5 and d.shape == (12, 3)
    np.testing.assert_allclose(d[1:6], u / np.linalg.norm(u, axis=1)[:, None])
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    s = sq.pgse(10e-3, 30e-3, bvalues=b, directions=d)
    np.testing.assert_allclose(s.bvalues, b, rtol=1e-9)


@pytest.mark.parametrize("bvalues, directions, match", [
    ([0, 1000, 2000], np.eye(3), "s/mm\\^2"),
    ([0, np.nan], np.eye(3), "NaN"),
    ([1e9], np.zeros((2, 3)), "non-zero"),
    ([1e9], np.ones((2, 2)), "\\(D, 3\\)"),
])
def test_shells_refuse_wrong_units_and_shapes(bvalues, directions, match):
    with pytest.raises(ValueError, match=match):
        sq.shells(bvalues, directions)


def test_the_readme_first_scheme_measures_every_direction_at_every_b(tmp_path, monkeypatch):
    # the README once paired np.eye(3) with three b-values: b = 2000 s/mm^2 went along z only
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## A first scheme\n\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # the block writes dwi.bval / dwi.bvec
    env: dict = {}
    exec(compile(block, "README.md", "exec"), env)
    pg = env["pg"]
    for b in (1e9, 2e9):
        dirs = pg.directions[np.isclose(pg.bvalues, b)]
        assert len(dirs) == 3 and np.allclose(np.abs(dirs), np.eye(3)), (b, dirs)
