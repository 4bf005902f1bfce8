"""``python -m inferbox``: the same as the ``inferbox`` command."""

from inferbox.cli import main

if __name__ == "__main__":
    main()
