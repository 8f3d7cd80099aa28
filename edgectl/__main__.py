"""Entry point for `edgectl` and `python -m edgectl`."""

import sys


def main() -> None:
    from edgectl.cli.app import run

    sys.exit(run())


if __name__ == "__main__":
    main()
