"""The one exception type a user mistake raises: the CLI prints it as one line."""


class MedgovError(Exception):
    """A problem the user can fix (bad path, missing key, unreadable manifest...)."""
