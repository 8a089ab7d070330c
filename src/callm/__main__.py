"""``python -m callm``: the ``callm`` command line."""

from callm.cli import main

if __name__ == "__main__":
    main()
