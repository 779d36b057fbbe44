"""`python -m calosim`: the `calosim` command, for launchers such as torchrun's `-m`."""

from calosim.cli import main

main()
