"""What a simulation returns: signals with their Monte Carlo errors, ground truth and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sequences import Scheme


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Signals of one simulation and everything needed to judge and reproduce them.

    Returned by :func:`walker.simulate`; the fields below are the attributes
    of the (frozen) instance.

    Parameters
    ----------
    signal : numpy.ndarray
        (M,) normalised signal (dimensionless), real part: mean of cos(phase) over walkers.
    stderr : numpy.ndarray
        (M,) Monte Carlo standard error of ``signal``:
        sqrt((1 + S(2g) - 2 S(g)^2) / (2N)), with S(2g) the mean of cos(2 phase)
        from the same walkers (analytic reference, section 1.0).
    signal_imag : numpy.ndarray
        (M,) imaginary part (zero up to noise for symmetric substrates).
    compartment_signals : dict
        Compartment name -> (M,) signal of the walkers that started there.
    compartment_stderr : dict
        Compartment name -> (M,) standard error of that signal.
    compartment_counts : dict
        Compartment name -> number of walkers that started there.
    ground_truth : dict
        The substrate's true parameters (SI), plus the diffusivity used.
    scheme : Scheme
        The scheme on the walker's time grid (what was actually played).
    discrete_bvalues : numpy.ndarray
        (M,) b-values seen by the walk (trapezoid position sampling), s/m^2.
    record_times : numpy.ndarray
        (R,) times at which displacements were recorded (s).
    displacements : numpy.ndarray or None
        (N, R, 3) lab-frame displacements at ``record_times`` (m).
    msd : numpy.ndarray or None
        (R, 3) mean squared displacement per lab axis (m^2).
    kurtosis : numpy.ndarray or None
        (R, 3) excess kurtosis of the displacement per lab axis.
    trajectories : numpy.ndarray or None
        (n, T + 1, 3) lab-frame positions of the first walkers at every step (m).
    reflections : int
        Wall reflections over all walkers and steps.
    truncated_steps : int
        Steps cut short after too many bounces (tangential grazing; should be 0).
    escapes : int
        Walkers found outside the compartment they were in (must be 0): outside
        their primitive, or inside one without having crossed its membrane.
    provenance : dict
        Seed, walkers, steps, dt (s), step length (m), gamma (rad/s/T), diffusivity (m^2/s),
        versions, threads, wall time (s).
    transits : int
        Membrane crossings over all walkers (0 for impermeable substrates).
    first_transit_times : numpy.ndarray or None
        (N,) time of each walker's first membrane crossing in s, NaN if it never
        crossed (permeable substrates only): for walkers started inside, their
        residence times (censored at the end of the walk).
    final_fractions : dict
        Compartment name -> fraction of walkers in it at the end (permeable
        cylinders and spheres).
    final_positions : numpy.ndarray or None
        (N, 3) lab-frame positions at the end of the walk (m); outside
        walkers are wrapped into the periodic box.
    group_signals, group_stderr, group_counts : dict
        Signals, standard errors and walker counts per finer group than compartments where the substrate
        defines them (:meth:`substrates.Substrate.signal_groups`: each bundle of
        :func:`substrates.crossing_bundles`, "intra.bundle_0", ...), by where the walkers started; empty
        otherwise.
    """

    signal: np.ndarray
    stderr: np.ndarray
    signal_imag: np.ndarray
    compartment_signals: dict
    compartment_stderr: dict
    compartment_counts: dict
    ground_truth: dict
    scheme: Scheme
    discrete_bvalues: np.ndarray
    record_times: np.ndarray
    displacements: np.ndarray | None
    msd: np.ndarray | None
    kurtosis: np.ndarray | None
    trajectories: np.ndarray | None
    reflections: int
    truncated_steps: int
    escapes: int
    provenance: dict = field(default_factory=dict)
    transits: int = 0
    first_transit_times: np.ndarray | None = None
    final_fractions: dict = field(default_factory=dict)
    final_positions: np.ndarray | None = None
    group_signals: dict = field(default_factory=dict)
    group_stderr: dict = field(default_factory=dict)
    group_counts: dict = field(default_factory=dict)

    @property
    def bvalues(self) -> np.ndarray:
        """(M,) b-values of the played scheme in s/m^2."""
        return self.scheme.bvalues

    def __repr__(self) -> str:
        p = self.provenance
        sub = p.get("substrate")  # how the substrate was made (its description), in the provenance
        made = sub.get("factory", "substrate") if isinstance(sub, dict) else "substrate"
        run = f"{p['n_walkers']} walkers x {p['n_steps']} steps, " if "n_walkers" in p and "n_steps" in p else ""
        sig = f", S {np.min(self.signal):.4g}-{np.max(self.signal):.4g}" if len(self.signal) else ""
        return (f"SimulationResult({made}, {run}{len(self.signal)} measurements{sig}, escapes {self.escapes}; "
                ".summary() for the signals)")

    def summary(self) -> str:
        """A few lines a person reads.

        Returns
        -------
        str
            Walkers, steps, dt (us), step length (um), speed, escapes and
            reflections, then b (s/mm^2), signal and standard error of the first
            12 measurements.
        """
        p = self.provenance
        lines = [f"{p['n_walkers']} walkers x {p['n_steps']} steps (dt {p['dt'] * 1e6:.3g} us, step "
                 f"{p['step_length'] * 1e6:.3g} um) in {p['wall_time_s']:.2f} s "
                 f"({p['walker_steps_per_s'] / 1e6:.1f} M walker-steps/s on {p['threads']} threads)",
                 f"escapes {self.escapes}, reflections {self.reflections}, truncated steps {self.truncated_steps}"]
        for m in range(min(len(self.signal), 12)):
            lines.append(f"  b = {self.bvalues[m] / 1e6:8.1f} s/mm^2  S = {self.signal[m]:.5f} +- {self.stderr[m]:.5f}")
        return "\n".join(lines)
