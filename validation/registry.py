"""Every analytic model the harness can fit, by name: the three catalogues in one registry."""

from __future__ import annotations

from .base import Model
from .models import MODELS as BASIC_MODELS
from .models_grey_matter import MODELS as GREY_MATTER_MODELS
from .models_white_matter import MODELS as WHITE_MATTER_MODELS

#: name -> Model, over the basic, white-matter and cell catalogues
MODELS: dict[str, Model] = {**BASIC_MODELS, **WHITE_MATTER_MODELS, **GREY_MATTER_MODELS}


def list_models() -> list[str]:
    """Names of every analytic model the harness can fit.

    Returns
    -------
    list of str
        Model names in alphabetical order (keys of :data:`MODELS`).

    Examples
    --------
    >>> import validation
    >>> "stick_zeppelin" in validation.list_models()
    True
    """
    return sorted(MODELS)


def get_model(name: str) -> Model:
    """The model called ``name`` (see :func:`list_models`); KeyError listing the names otherwise.

    Parameters
    ----------
    name : str
        Model name, e.g. ``"stick_zeppelin"``.

    Returns
    -------
    Model
        The registered model.

    Raises
    ------
    KeyError
        If no model has that name (the message lists the names).

    Examples
    --------
    >>> import validation
    >>> validation.get_model("stick_zeppelin").names
    ['f', 'D_par', 'D_perp', 'theta', 'phi']
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return MODELS[name]
