"""Substrate files: one HDF5 file per substrate, float64 throughout, with its ground truth.

The file holds the fields every substrate shares (the :class:`Substrate` fields: kind, box, rotation,
diffusion tensor, description, permeability, relaxivity) and then whatever the substrate's family writes
(its registered ``write``; see :data:`substrates.FAMILIES`). Reading looks the family up by the stored
kind code and lets it rebuild the substrate (its registered ``read``). The kind codes and the layout are
those of every file written so far ("diffwalk-substrate-1"), so old files still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .base import FAMILIES, Substrate, family_of_kind

#: format tag of a substrate file (attribute "format")
FORMAT = "diffwalk-substrate-1"


def save_substrate(sub: Substrate, path) -> None:
    """Write a substrate with its ground truth to an HDF5 file, float64 throughout.

    Parameters
    ----------
    sub : Substrate
        A substrate of a family that has a file format (analytic, mesh and sphere union; lengths in m).
    path : str or Path
        Output file (``.h5``); replaced whole once the new file is complete.

    Raises
    ------
    ValueError
        If the substrate's family cannot be stored (nothing is written then).
    """
    import h5py
    family = FAMILIES[sub.family]
    if family.write is None:
        raise ValueError(family.no_file or f"save_substrate does not store {family.name} substrates")
    path = Path(path)
    # written under a temporary name and renamed: a reader never sees half a file, and a failed write
    # leaves neither a broken file nor the previous one damaged
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as h:
            h.attrs["format"] = FORMAT
            h.attrs["kind"] = int(sub.kind)
            h.attrs["description"] = json_text(sub.description)
            for name in ("box", "rotation", "permeability", "relaxivity"):
                h.create_dataset(name, data=np.asarray(getattr(sub, name), dtype=float))
            if sub.diffusion_tensor is not None:
                h.create_dataset("diffusion_tensor", data=sub.diffusion_tensor)
            family.write(sub, h)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_substrate(path) -> Substrate:
    """Read a substrate written by :func:`save_substrate` (a family's checks, such as a mesh's, run again).

    Parameters
    ----------
    path : str or Path
        File written by :func:`save_substrate`.

    Returns
    -------
    Substrate
        Of the family the stored kind code belongs to; lengths in m, as saved.

    Raises
    ------
    ValueError
        If the file is not a diffwalk substrate file, or its kind belongs to no family that reads files.
    """
    import h5py
    with h5py.File(path, "r") as h:
        if h.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a diffwalk substrate file")
        kind = int(h.attrs["kind"])
        family = family_of_kind(kind)
        if family.read is None:
            raise ValueError(f"{path}: substrates of the {family.name} family cannot be read from files")
        shared = {"kind": kind, "box": h["box"][()], "rotation": h["rotation"][()],
                  "diffusion_tensor": h["diffusion_tensor"][()] if "diffusion_tensor" in h else None,
                  "description": json.loads(h.attrs["description"]), "permeability": h["permeability"][()],
                  # files from before relaxivity have none
                  "relaxivity": h["relaxivity"][()] if "relaxivity" in h else np.zeros(0)}
        return family.read(h, shared)


def json_text(obj) -> str:
    """JSON text of a description or ground-truth record, numpy arrays and scalars as plain lists and numbers.

    Parameters
    ----------
    obj : object
        A dict (or any JSON-able object) that may hold numpy arrays and scalars.

    Returns
    -------
    str
        The JSON text.
    """
    return json.dumps(obj, default=_json_default)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"cannot store {type(o).__name__} in JSON")
