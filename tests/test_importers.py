"""Substrates other generators write (issue 29, part 4): MC/DC cylinder and sphere lists with their voxel,
CATERPillar sphere lists (current and older headers), CACTUS strand lists. Small files written here in each
format as its public source defines it; units converted at the boundary and unit mistakes named; imported
geometry walked with zero escapes."""

from __future__ import annotations

import numpy as np
import pytest

import sequences as sq
import substrates
import walker

CONF = """N 1000
T 100
duration 0.05
<obstacle>
cylinders_list cyl.txt
</obstacle>
<voxels>
0 0 0
0.02 0.02 0.02
</voxels>
<END>
"""


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------ MC/DC
def test_mcdc_four_column_list_in_um_with_its_voxel(tmp_path):
    p = _write(tmp_path, "cyl.txt", "0.001\n5.0 5.0 0.0 1.2\n12.5 7.0 0.0 0.8\n")
    conf = _write(tmp_path, "run.conf", CONF)
    sub = substrates.read_mcdc_cylinders(p, conf=conf)
    assert np.allclose(sorted(sub.radii), [0.8e-6, 1.2e-6])
    assert np.allclose(sub.box[:2], [20e-6, 20e-6])
    assert np.allclose(sorted(sub.centers[:, 0]), [5e-6, 12.5e-6])
    lo, hi = substrates.read_mcdc_voxel(conf)
    assert np.allclose(hi - lo, 20e-6)


def test_mcdc_seven_column_list_drops_the_periodic_copies_a_gamma_packing_lists(tmp_path):
    # MC/DC's gamma packing writes P and Q = P + 1 mm along z, and repeats cylinders that cross a face
    p = _write(tmp_path, "gamma.txt", "0.001\n5 5 0 5 5 1000 1.2\n19.5 7 0 19.5 7 1000 0.8\n"
                                      "-0.5 7 0 -0.5 7 1000 0.8\n")
    sub = substrates.read_mcdc_cylinders(p, box=[20e-6, 20e-6, 20e-6])
    assert len(sub.radii) == 2 and sub.description["periodic_copies_dropped"] == 1


def test_mcdc_mistakes_are_named(tmp_path):
    good = "5 5 0 1.2\n"
    with pytest.raises(ValueError, match="scale"):
        substrates.read_mcdc_cylinders(_write(tmp_path, "a.txt", "0.001 1\n" + good), box=[2e-5] * 3)
    # a file in um with the scale line of a file in mm: radii of 1.2 mm
    with pytest.raises(ValueError, match="0.001 for um"):
        substrates.read_mcdc_cylinders(_write(tmp_path, "b.txt", "1\n" + good), box=[2e-5] * 3)
    with pytest.raises(ValueError, match="not parallel to z"):
        substrates.read_mcdc_cylinders(_write(tmp_path, "c.txt", "0.001\n5 5 0 6 5 1 1.2\n"), box=[2e-5] * 3)
    with pytest.raises(ValueError, match="box= .* or conf="):
        substrates.read_mcdc_cylinders(_write(tmp_path, "d.txt", "0.001\n" + good))
    with pytest.raises(ValueError, match="in m"):
        substrates.read_mcdc_cylinders(_write(tmp_path, "e.txt", "0.001\n" + good), box=[20, 20, 20])
    with pytest.raises(ValueError, match="line 2"):
        substrates.read_mcdc_cylinders(_write(tmp_path, "f.txt", "0.001\n5 5 zero 1.2\n"), box=[2e-5] * 3)


def test_mcdc_spheres(tmp_path):
    p = _write(tmp_path, "sph.txt", "0.001\n10 10 10 2.5\n3 3 3 1\n")
    sub = substrates.read_mcdc_spheres(p, box=[20e-6, 20e-6, 20e-6])
    assert np.allclose(sorted(sub.radii), [1e-6, 2.5e-6])


def test_imported_mcdc_cylinders_walk_with_zero_escapes(tmp_path):
    p = _write(tmp_path, "cyl.txt", "0.001\n5.0 5.0 0.0 3\n13 13 0.0 3\n")
    sub = substrates.read_mcdc_cylinders(p, box=[20e-6] * 3)
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9], directions=[[1, 0, 0]])
    res = walker.simulate(sub, s, n_walkers=2000, n_steps=2000, diffusivity=2e-9, seed=1, start="intra")
    assert res.escapes == 0


# ------------------------------------------------------------------ CATERPillar
CATERPILLAR = """cell_type cell_id component component_id X Y Z inner_radius outer_radius
axon 0 axon 0 12.1 20.4 0.30 0.70 1.00
axon 0 axon 0 12.1 20.5 0.55 0.70 1.00
axon 1 axon 0 30 30 1 1.5 1.5
glial_cell 0 soma 0 40 40 40 6 6
glial_cell 0 branch 1 43.5 40.2 40.1 0.4 0.4
blood_vessel 0 blood_vessel 0 10 40 10 3 3
"""


def test_caterpillar_sphere_list_with_its_info_file(tmp_path):
    p = _write(tmp_path, "Voxel.csv", CATERPILLAR)
    _write(tmp_path, "Voxel_growth_info.txt", "Voxel Size 60\nICVF 0.3\n")
    sub = substrates.read_caterpillar(p)
    assert np.allclose(sub.box, 60e-6)
    assert len(sub.radii) == 5  # the blood vessel is left out by default
    assert np.allclose(sub.radii[:3], [0.7e-6, 0.7e-6, 1.5e-6])
    assert list(sub.fibre) == [0, 0, 1, 2, 2]
    assert sub.description["spheres"] == {"axon": 3, "glial_cell": 2}
    outer = substrates.read_caterpillar(p, radius="outer", cells=("axon",))
    assert np.allclose(outer.radii, [1e-6, 1e-6, 1.5e-6])


def test_caterpillar_older_swc_header(tmp_path):
    p = _write(tmp_path, "old.swc", "id_ax id_sph id_branch Type X Y Z Rin Rout P\n"
                                    "0 0 -1 axon 5 5 1 0.5 0.8 -1\n0 1 -1 axon 5 5 1.2 0.5 0.8 0\n"
                                    "1 0 0 glialSoma 20 20 20 4 4 -1\n")
    sub = substrates.read_caterpillar(p, box=30e-6)
    assert len(sub.radii) == 3 and list(sub.fibre) == [0, 0, 1]


def test_caterpillar_mistakes_are_named(tmp_path):
    p = _write(tmp_path, "v.csv", CATERPILLAR)
    with pytest.raises(ValueError, match="growth_info"):
        substrates.read_caterpillar(p)
    with pytest.raises(ValueError, match="CATERPillar writes um"):
        substrates.read_caterpillar(p, box=60e-6, units="mm")
    with pytest.raises(ValueError, match="in m"):
        substrates.read_caterpillar(p, box=60)
    with pytest.raises(ValueError, match="header"):
        substrates.read_caterpillar(_write(tmp_path, "w.csv", "a b c\n1 2 3\n"), box=60e-6)


def test_imported_caterpillar_union_walks_with_zero_escapes(tmp_path):
    z = np.arange(0, 20, 0.5)
    rows = "\n".join(f"axon 0 axon 0 5 5 {v} 2 2.5" for v in z)
    p = _write(tmp_path, "fibre.csv", CATERPILLAR.splitlines()[0] + "\n" + rows + "\n")
    sub = substrates.read_caterpillar(p, box=[10e-6, 10e-6, 20e-6])
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9], directions=[[1, 0, 0]])
    res = walker.simulate(sub, s, n_walkers=1000, n_steps=4400, diffusivity=2e-9, seed=2)
    assert res.escapes == 0


# ------------------------------------------------------------------ CACTUS
CACTUS = """30
2
3
-15 1.2 -4.0 0.8
0 1.3 -4.1 0.8
15 1.4 -4.2 0.8
2
-15 -6 5 1.1
15 -6 5 1.6
"""


def test_cactus_strands_become_chains_of_spheres(tmp_path):
    sub = substrates.read_cactus(_write(tmp_path, "final.txt", CACTUS))
    assert np.allclose(sub.box, 30e-6)
    assert set(np.unique(sub.fibre)) == {0, 1}
    # neighbouring spheres of a strand at most half a local radius apart
    for f in (0, 1):
        c = sub.centers[sub.fibre == f]
        r = sub.radii[sub.fibre == f]
        d = np.diff(c, axis=0)
        d -= sub.box * np.round(d / sub.box)  # the end at x = L is wrapped onto x = 0: minimum image
        gaps = np.linalg.norm(d, axis=1)
        assert np.all(gaps <= 0.5 * np.minimum(r[:-1], r[1:]) + 1e-12)
    # moved from the centred box to [0, L]: the first control point of strand 0 at (0, 16.2, 11) um
    assert np.allclose(sub.centers[0], [0, 16.2e-6, 11e-6])
    # radii interpolated along strand 1 from 1.1 to 1.6 um
    r1 = sub.radii[sub.fibre == 1]
    assert r1[0] == pytest.approx(1.1e-6) and r1[-1] == pytest.approx(1.6e-6) and np.all(np.diff(r1) >= 0)


def test_cactus_truncated_or_padded_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="ends after 1"):
        substrates.read_cactus(_write(tmp_path, "a.txt", "\n".join(CACTUS.splitlines()[:6]) + "\n"))
    with pytest.raises(ValueError, match="more lines"):
        substrates.read_cactus(_write(tmp_path, "b.txt", CACTUS + "1 2 3 4\n"))
    with pytest.raises(ValueError, match="CACTUS writes um"):
        substrates.read_cactus(_write(tmp_path, "c.txt", CACTUS), units="mm")


# ------------------------------------------------------------------ configs
def test_every_importer_is_a_config_type_with_paths_relative_to_the_config(tmp_path):
    import tomllib

    from diffwalk import config as cfgmod
    _write(tmp_path, "cyl.txt", "0.001\n5.0 5.0 0.0 1.2\n12.5 7.0 0.0 0.8\n")
    _write(tmp_path, "sph.txt", "0.001\n10 10 10 2.5\n")
    _write(tmp_path, "run.conf", CONF)
    _write(tmp_path, "Voxel.csv", CATERPILLAR)
    _write(tmp_path, "Voxel_growth_info.txt", "Voxel Size 60\n")
    _write(tmp_path, "final.txt", CACTUS)
    tables = {'type = "from_mcdc_cylinders"\npath = "cyl.txt"\nconf = "run.conf"': 2,
              'type = "from_mcdc_spheres"\npath = "sph.txt"\nbox = "20 20 20 um"': 1,
              'type = "from_caterpillar"\npath = "Voxel.csv"\nradius = "outer"': 5,
              'type = "from_cactus"\npath = "final.txt"\nspacing = 0.25': None}
    for table, n in tables.items():
        cfg = tomllib.loads(f"[substrate]\n{table}\n[[scheme]]\ntype = 'pgse'\ndelta = '10 ms'\nDelta = '20 ms'\n"
                            "bvalues = '0 1000 s/mm^2'\n[simulation]\ndiffusivity = '2 um^2/ms'\n")
        job = cfgmod.parse_job(cfg, tmp_path)
        assert "path_sha256" in job.echo["substrate"]
        if n is not None:
            assert len(job.substrate.radii) == n, table
    with pytest.raises(cfgmod.ConfigError, match="path"):
        cfgmod.parse_job(tomllib.loads("[substrate]\ntype = 'from_cactus'\npath = 'missing.txt'\n[[scheme]]\n"
                                       "type = 'pgse'\ndelta = '10 ms'\nDelta = '20 ms'\nbvalues = '0 s/mm^2'\n"
                                       "[simulation]\ndiffusivity = '2 um^2/ms'\n"), tmp_path)
