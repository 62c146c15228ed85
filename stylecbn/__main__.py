"""`python -m stylecbn ...` runs the command line (where the `stylecbn` script is not on PATH)."""

from .cli import main

main()
