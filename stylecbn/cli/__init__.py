"""The command line wing: `root` the `stylecbn` group (errors to one-line messages and exit
codes), then one module per command family (`apply`, `sheets`, `info`, `train`, `export`,
`serve`) and their shared options (`common`). May import every other wing."""

from stylecbn.cli.root import main

__all__ = ["main"]
