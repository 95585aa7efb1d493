"""Pulseq sequences written by pypulseq inside the tests, read back by diffwalk's own reader.

Each file is built so that diffwalk's generators make the same encoding (same timing, same amplitudes in
T/m, converted at the file boundary with diffwalk's gamma): the effective gradients on the file's 10-us
raster and the b-values must agree within 1e-6 relative, and the refocusing pulses must land where the
scheme's field signs need them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import sequences as sq
from sequences.constants import GAMMA

pp = pytest.importorskip("pypulseq", reason="writing test sequences needs pypulseq (pip install 'diffwalk[pulseq]')")
# pypulseq moves zero delays up to the hardware's dead times, as intended here
pytestmark = pytest.mark.filterwarnings("ignore:Specified .* delay:UserWarning")

HZ_PER_T = GAMMA / (2 * math.pi)
#: amplitudes whose Hz/m values a .seq file (six significant digits) holds exactly: 2.5e6 Hz/m (58.7 mT/m)
RAMP, FLAT, DELTA_BIG, TE, G = 0.5e-3, 5e-3, 15e-3, 30e-3, 2.5e6 / HZ_PER_T
G_READ = 4e5 / HZ_PER_T
READOUT_CENTRE = 1.81e-3  # the readout block's ADC centre after the block's start


def _system():
    return pp.Opts(max_grad=200, grad_unit="mT/m", max_slew=500, slew_unit="T/m/s", rf_ringdown_time=20e-6,
                   rf_dead_time=100e-6, adc_dead_time=10e-6)


def _trap(system, channel, g):
    return pp.make_trapezoid(channel=channel, amplitude=g * HZ_PER_T, flat_time=FLAT, rise_time=RAMP, system=system)


def _excite(seq, system):
    """A 0.5-ms 90-degree block pulse (centre 0.35 ms into its 0.62-ms block); returns the time after its
    centre at which the block ends."""
    seq.add_block(pp.make_block_pulse(flip_angle=math.pi / 2, duration=0.5e-3, system=system, use="excitation"))
    return 0.27e-3


def _pgse_block(seq, system, g, axis="x", readout_gradient=0.0):
    """Diffusion lobes at t1 = 4.5 ms and t1 + Delta after the excitation centre, a 1-ms refocusing block pulse
    centred at TE/2 = 15 ms, a 3.2-ms readout centred at TE = 30 ms (with a readout gradient when asked)."""
    after = _excite(seq, system)
    t1 = 0.5 * (TE - (DELTA_BIG + RAMP + FLAT + RAMP))
    seq.add_block(pp.make_delay(t1 - after))
    if g:
        seq.add_block(_trap(system, axis, g))
    else:
        seq.add_block(pp.make_delay(FLAT + 2 * RAMP))
    end1 = t1 + FLAT + 2 * RAMP
    seq.add_block(pp.make_delay(TE / 2 - 0.6e-3 - end1))
    seq.add_block(pp.make_block_pulse(flip_angle=math.pi, duration=1e-3, system=system, use="refocusing"))
    seq.add_block(pp.make_delay(t1 + DELTA_BIG - (TE / 2 + 0.52e-3)))
    if g:
        seq.add_block(_trap(system, axis, g))
    else:
        seq.add_block(pp.make_delay(FLAT + 2 * RAMP))
    end2 = t1 + DELTA_BIG + FLAT + 2 * RAMP
    if readout_gradient:  # the ADC (centre 1.81 ms into its block) on the flat top of a readout trapezoid
        ro = pp.make_trapezoid(channel="y", amplitude=readout_gradient * HZ_PER_T, flat_time=3.22e-3,
                               rise_time=0.2e-3, delay=0.0, system=system)
        adc = pp.make_adc(num_samples=64, duration=3.2e-3, delay=0.21e-3, system=system)
        seq.add_block(pp.make_delay(TE - READOUT_CENTRE - end2))
        seq.add_block(ro, adc)
    else:  # the ADC alone, centre 1.61 ms into its block
        seq.add_block(pp.make_delay(TE - 1.61e-3 - end2))
        seq.add_block(pp.make_adc(num_samples=64, duration=3.2e-3, system=system))


def _write(seq, tmp_path, name):
    path = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq.write(str(path))
    return path


def _pgse_reference(g_list, echo=True):
    s = sq.concatenate([sq.pgse(RAMP + FLAT, DELTA_BIG, gradient_strength=[g], directions=[1.0, 0, 0],
                                ramp_time=RAMP, echo_time=TE, dt=10e-6) for g in g_list])
    return s if echo else s.with_refocusing([])


def test_a_pulsed_gradient_spin_echo_reads_as_sequences_pgse(tmp_path):
    system = _system()
    seq = pp.Sequence(system)
    for g in (0.0, G):  # two encodings, two measurements
        _pgse_block(seq, system, g)
    scheme = sq.read_pulseq(_write(seq, tmp_path, "pgse.seq"))
    ref = _pgse_reference([0.0, G])
    assert len(scheme) == 2 and scheme.dt == pytest.approx(10e-6)
    assert scheme.n_steps == ref.n_steps
    np.testing.assert_allclose(scheme.gradients, ref.gradients, rtol=0, atol=1e-6 * G)
    np.testing.assert_allclose(scheme.bvalues, ref.bvalues, rtol=1e-6, atol=1e-6 * ref.bvalues.max())
    np.testing.assert_allclose(scheme.echo_time, TE, rtol=1e-9)
    np.testing.assert_allclose(scheme.refocusing, TE / 2, rtol=1e-9)
    assert not scheme.gradient_echo.any()
    assert abs(scheme.field_signs().sum(axis=1)).max() < 1e-9  # the file's pulse refocuses a static offset


def test_a_bipolar_gradient_echo_reads_as_an_unrefocused_scheme(tmp_path):
    system = _system()
    seq = pp.Sequence(system)
    after = _excite(seq, system)
    t1 = 2e-3
    seq.add_block(pp.make_delay(t1 - after))
    seq.add_block(_trap(system, "z", G))
    seq.add_block(_trap(system, "z", -G))
    lobes = 2 * (FLAT + 2 * RAMP)
    te = 2 * t1 + lobes
    seq.add_block(pp.make_delay(te - 1.61e-3 - (t1 + lobes)))
    seq.add_block(pp.make_adc(num_samples=64, duration=3.2e-3, system=system))
    scheme = sq.read_pulseq(_write(seq, tmp_path, "bipolar.seq"))
    ref = sq.pgse(RAMP + FLAT, FLAT + 2 * RAMP, gradient_strength=[G], directions=[0, 0, 1.0], ramp_time=RAMP,
                  echo_time=te, dt=10e-6).with_refocusing([])
    assert scheme.gradient_echo.all()
    np.testing.assert_allclose(scheme.gradients, ref.gradients, rtol=0, atol=1e-6 * G)
    np.testing.assert_allclose(scheme.bvalues, ref.bvalues, rtol=1e-6)
    assert scheme.field_signs().sum() * scheme.dt == pytest.approx(te)  # nothing refocuses the field


def test_a_spin_echo_with_its_readout_gradient_adds_the_readout_to_the_encoding(tmp_path):
    """The readout trapezoid (y, 9.4 mT/m, flat from 0.2 ms before the ADC) counts up to the echo, with the
    sign the refocusing pulse leaves (-1 after it); the diffusion lobes stay as they were."""
    system = _system()
    seq = pp.Sequence(system)
    _pgse_block(seq, system, G, readout_gradient=G_READ)
    scheme = sq.read_pulseq(_write(seq, tmp_path, "se_readout.seq"))
    ref = _pgse_reference([G])
    np.testing.assert_allclose(scheme.gradients[..., 0], ref.gradients[..., 0], rtol=0, atol=1e-6 * G)
    # the readout gradient, integrated independently: cell averages by a fine midpoint rule
    start = TE - READOUT_CENTRE  # the readout block's start after the excitation centre
    knots = start + np.array([0.0, 0.2e-3, 3.42e-3, 3.62e-3])
    fine = 400
    t = (np.arange(scheme.n_steps * fine) + 0.5) * scheme.dt / fine
    g = np.interp(t, knots, [0.0, G_READ, G_READ, 0.0], left=0.0, right=0.0)
    expected = -g.reshape(scheme.n_steps, fine).mean(axis=1)  # after the refocusing pulse
    np.testing.assert_allclose(scheme.gradients[0, :, 1], expected, rtol=0, atol=1e-6 * G_READ)
    assert np.abs(scheme.gradients[0, :, 1]).max() == pytest.approx(G_READ)
    assert scheme.bvalues[0] > ref.bvalues[0]


def test_a_spin_echo_epi_train_echoes_at_the_spin_echo_not_at_its_first_line(tmp_path):
    """An EPI readout of 8 lines (ADCs on the flat tops of alternating x trapezoids) centred on TE after a
    refocusing pulse at TE/2: the measurement ends at the spin echo, TE, where the readout's own moment is
    back to zero (the k-space centre) and a static offset is refocused; the first line's centre, 3.5 lines
    earlier, is not the echo."""
    system = _system()
    seq = pp.Sequence(system)
    after = _excite(seq, system)
    seq.add_block(pp.make_delay(TE / 2 - 0.6e-3 - after))
    seq.add_block(pp.make_block_pulse(flip_angle=math.pi, duration=1e-3, system=system, use="refocusing"))
    line = 0.84e-3  # a line: 0.1-ms ramps around a 0.64-ms flat top read by the ADC
    seq.add_block(pp.make_delay(TE - 4 * line - (TE / 2 + 0.52e-3)))
    for k in range(8):
        ro = pp.make_trapezoid(channel="x", amplitude=(-1) ** k * G_READ * HZ_PER_T, flat_time=0.64e-3,
                               rise_time=0.1e-3, system=system)
        seq.add_block(ro, pp.make_adc(num_samples=32, duration=0.64e-3, delay=0.1e-3, system=system))
    scheme = sq.read_pulseq(_write(seq, tmp_path, "se_epi.seq"))
    assert scheme.echo_time[0] == pytest.approx(TE, abs=1e-9)
    first_line = TE - 4 * line + 0.42e-3
    assert TE - first_line == pytest.approx(3.5 * line)
    assert abs(scheme.field_signs().sum()) * scheme.dt < 1e-9  # refocused at the echo
    # four whole lines before the echo, alternating: the readout's moment is zero there, and nonzero on
    # the way (the lines are played)
    q = np.cumsum(scheme.gradients[0, :, 0]) * scheme.dt
    assert abs(q[-1]) < 1e-6 * G_READ * 0.74e-3
    assert np.abs(q).max() == pytest.approx(G_READ * 0.74e-3, rel=1e-3)


def test_rf_pulses_that_are_not_excitations_or_refocusing_are_refused_with_the_reason(tmp_path):
    system = _system()
    seq = pp.Sequence(system)
    seq.add_block(pp.make_block_pulse(flip_angle=math.pi, duration=1e-3, system=system, use="inversion"))
    _pgse_block(seq, system, G)
    with pytest.raises(sq.PulseqError, match="inversion with a 180-degree flip"):
        sq.read_pulseq(_write(seq, tmp_path, "inv.seq"))
    seq = pp.Sequence(system)
    seq.add_block(pp.make_block_pulse(flip_angle=math.radians(30), duration=1e-3, system=system))
    with pytest.raises(sq.PulseqError, match="30-degree flip"):
        sq.read_pulseq(_write(seq, tmp_path, "fa30.seq"))
    seq = pp.Sequence(system)
    _excite(seq, system)
    seq.add_block(_trap(system, "x", G))
    with pytest.raises(sq.PulseqError, match="no readout after its last refocusing pulse"):
        sq.read_pulseq(_write(seq, tmp_path, "noadc.seq"))
    old = tmp_path / "old.seq"
    old.write_text("[VERSION]\nmajor 1\nminor 3\nrevision 0\n[BLOCKS]\n1 0 0 0 0 0 0\n")
    with pytest.raises(sq.PulseqError, match="format 1.3"):
        sq.read_pulseq(old)
    with pytest.raises(FileNotFoundError, match="no such Pulseq file"):
        sq.read_pulseq(tmp_path / "missing.seq")
