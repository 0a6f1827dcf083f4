"""Error types that decide llmctl's exit codes.

UserError (exit 2) is a mistake the user can fix: a missing file, a bad flag value, an
unknown recipe key. Its message names the file, line or key at fault and says what to do.
Anything else that escapes a stage is a runtime failure (exit 1).
"""


class UserError(Exception):
    """A mistake the user can fix. The CLI prints the message alone and exits with code 2."""


class ConfigError(UserError):
    """A recipe or override that does not fit the stage's config dataclass."""


class Incomplete(Exception):  # noqa: N818 (not an error: a run that stopped on purpose)
    """A long stage stopped before the end on purpose (e.g. a time budget); exit code 3.
    The staging directory is kept and `--resume` continues."""
