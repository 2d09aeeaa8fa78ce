"""Batch runs over many images or huge ones: units of work (one per small image, one per block of a big one)
that write their own outputs (``units``), done in this process or on a dask.distributed cluster (``cluster``)."""
from .units import BIG_PIXELS, FORMATS, Output, Unit, finish, plan, run_unit, targets

__all__ = ["BIG_PIXELS", "FORMATS", "Output", "Unit", "finish", "plan", "run_unit", "targets"]
