"""User-facing errors.

Every problem caused by the user's input (a file, a config key, a run directory) is raised
as :class:`AttncoachError` with a one-line message; the CLI prints it on stderr and exits
non-zero without a traceback.
"""


class AttncoachError(Exception):
    """A problem with the user's input, reported as one clear line."""
