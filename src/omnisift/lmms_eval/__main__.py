"""`python -m omnisift.lmms_eval tasks`: print the folder to pass to lmms-eval's `--include_path`."""

import sys

from omnisift.lmms_eval import TASKS_DIR


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["tasks"]:
        print(
            "usage: python -m omnisift.lmms_eval tasks   (prints the --include_path folder)", file=sys.stderr
        )
        return 2
    print(TASKS_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
