"""The package's one error type for bad input: its message is one line naming the input, the
problem and the fix; the CLI prints it and exits non-zero."""


class Trans3DHeadError(Exception):
    """Bad input (missing file, wrong folder, corrupt data, unknown model)."""
