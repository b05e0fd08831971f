"""The one family of errors dlspark raises on purpose: each says what was wrong, with which value, and what to do."""


class DlsparkError(Exception):
    """Base of every error dlspark raises deliberately; the CLI prints its message without a traceback."""


class ConfigError(DlsparkError):
    """A configuration key is unknown, has the wrong type, or names a path that does not exist."""


class InputError(DlsparkError):
    """The data a stage was asked to read is missing or unusable."""


class AccountingError(DlsparkError):
    """Rows in and rows out of a stage do not add up: something was lost or duplicated."""
