"""The package's version, where the engine can read it without importing the package root (which imports the
engine): provenance of results, the workers' version check."""
__version__ = "0.1.0"
