"""Sample data shipped with napari-fewcell (CC0, see README.md here)."""
