"""`python -m disco_train COMMAND ...`: every command of the project (the list: `python -m disco_train --help`)."""

import sys

from disco_train.commands import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
