"""`python3 -m apiary …` runs the apiary command line (the same binary as
`apiary …`: this build's, or the installed one), e.g. `python3 -m apiary --help`."""

import os
import shutil
import sys


def cli_path() -> str:
    try:
        from ._cli_path import APIARY_BIN
    except ImportError:
        APIARY_BIN = ""
    if APIARY_BIN and os.access(APIARY_BIN, os.X_OK):
        return APIARY_BIN
    found = shutil.which("apiary")
    if not found:
        sys.exit("error: the apiary command line was not found (build it, or make install)")
    return found


def main() -> None:
    binary = cli_path()
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    main()
