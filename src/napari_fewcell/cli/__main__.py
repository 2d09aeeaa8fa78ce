"""`python -m napari_fewcell.cli` runs the `fewcell` command."""
from . import run

run()
