"""``python -m archbench ...``: the command line (same as the ``archbench`` script)."""

from archbench.cli import main

main()
