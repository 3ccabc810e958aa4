"""Exceptions the CLI turns into one-line messages instead of tracebacks."""


class NucleaizerError(Exception):
    """A user-facing problem (bad input file, mismatched folders, wrong weights); its text is the message."""


class ImageReadError(NucleaizerError):
    """An input image cannot be read or is of a shape we cannot segment."""


class PairingError(NucleaizerError):
    """Image and mask folders do not pair up by file stem."""
