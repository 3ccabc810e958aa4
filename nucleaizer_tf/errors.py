"""Exceptions the CLI and the napari plugin turn into one-line messages instead of tracebacks."""


class NucleaizerError(Exception):
    """A user-facing problem (bad input file, mismatched folders, wrong weights); its text is the message."""


class ImageReadError(NucleaizerError):
    """An input image cannot be read or is of a shape we cannot segment."""


class PairingError(NucleaizerError):
    """Image and mask folders do not pair up by file stem."""


def one_line(exc: BaseException) -> str:
    """The one-line message of a user-facing error, as the CLI prints it and the napari plugin shows it.

    An OS error becomes ``path: reason`` (no errno, no quotes), a `MemoryError` ``out of memory``; any
    other exception its text's first line (its type's name when it has no text).

    Parameters
    ----------
    exc : BaseException
        The error.

    Returns
    -------
    str
        One line, without a trailing newline.

    Examples
    --------
    >>> one_line(FileNotFoundError(2, "No such file or directory", "a.tif"))
    'a.tif: No such file or directory'
    >>> one_line(NucleaizerError("b.png: not an image\\nmore detail"))
    'b.png: not an image'
    >>> one_line(ValueError())
    'ValueError'
    """
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return f"{where}: {exc.strerror}" if where != "" else exc.strerror
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
