"""``python -m cutover``: the same as the ``cutover`` command."""

from cutover.cli import main

main()
