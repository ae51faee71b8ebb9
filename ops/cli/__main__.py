"""`python -m ops.cli` is the `ops` command."""

from ops.cli import main

main()
