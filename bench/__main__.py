"""Entry point for ``python -m bench``."""
import sys

from bench.cli.main import main

if __name__ == "__main__":  # worker processes (spawn) import this module again without running it
    sys.exit(main())
