"""Errors a user can cause; the CLI prints them as one line and exits non-zero."""


class CalosimError(Exception):
    """A problem with user input (file, option, model); shown without a traceback."""


class DataFormatError(CalosimError):
    """A data file is missing, unreadable or does not hold what calosim expects."""


class ModelFileError(CalosimError):
    """A model file is missing, corrupt, foreign or of an unknown model."""
