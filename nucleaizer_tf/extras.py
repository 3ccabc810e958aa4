"""The optional extras of the distribution and the packages each brings (declared in `setup.cfg`).

A command that needs a package of an extra the user did not install says which extra in one line
(`missing_extra_message`), instead of ending in a `ModuleNotFoundError` traceback.
"""

from __future__ import annotations

#: extra → the top-level modules it installs (the ones nucleaizer-tf imports)
EXTRAS = {
    "dask": ("dask", "distributed", "zarr"),
    "napari": ("napari", "npe2", "magicgui", "qtpy", "PyQt6"),
    "openvino": ("openvino",),
    "bioimageio": ("bioimageio",),
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs `module` (a dotted name is looked up by its top level), or None.

    Parameters
    ----------
    module : str or None
        A module name, as `ModuleNotFoundError.name` gives it.

    Returns
    -------
    str or None
        The extra's name (`EXTRAS`), or None for a module no extra installs.

    Examples
    --------
    >>> extra_for("zarr"), extra_for("dask.array"), extra_for("numpy")
    ('dask', 'dask', None)
    """
    top = (module or "").split(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def missing_extra_message(exc: ModuleNotFoundError) -> str:
    """One line for a missing package: which extra installs it, or which package to install.

    Parameters
    ----------
    exc : ModuleNotFoundError
        The failed import.

    Returns
    -------
    str
        The message, without the ``error:`` prefix.

    Examples
    --------
    >>> missing_extra_message(ModuleNotFoundError("No module named 'zarr'", name="zarr"))
    "this needs zarr, from the optional 'dask' extra: pip install 'nucleaizer-tf[dask]'"
    >>> missing_extra_message(ModuleNotFoundError("No module named 'scipy'", name="scipy"))
    'this needs the Python package scipy, which is missing: reinstall nucleaizer-tf (pip install nucleaizer-tf)'
    """
    name = (exc.name or "").split(".")[0] or "a Python package"
    extra = extra_for(name)
    if extra is not None:
        return f"this needs {name}, from the optional '{extra}' extra: pip install 'nucleaizer-tf[{extra}]'"
    return f"this needs the Python package {name}, which is missing: reinstall nucleaizer-tf (pip install nucleaizer-tf)"
