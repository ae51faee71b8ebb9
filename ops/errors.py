"""The one error type the ops library raises; the CLI turns it into a one-line message."""


class OpsError(Exception):
    """A failure the user can act on (bad input, missing resource, failed job)."""
