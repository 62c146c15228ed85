"""`python -m stylecbn ...` runs the command line (where the `stylecbn` script is not on PATH)."""

from stylecbn.cli.root import main

main()
