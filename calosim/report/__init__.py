"""Validation figures and reports."""

from calosim.report.plots import (
    CHANNELS_PNG,
    MEAN_IMAGES_PNG,
    PHOTON_SUM_PNG,
    write_validation_plots,
)

__all__ = ["CHANNELS_PNG", "MEAN_IMAGES_PNG", "PHOTON_SUM_PNG", "write_validation_plots"]
