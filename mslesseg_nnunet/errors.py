"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a file, folder or option value that cannot be used.

    The message must be one line and name the offending file or option.
    """
