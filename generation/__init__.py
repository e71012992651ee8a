"""synthgen: synthetic preference (DPO) datasets from question datasets and open models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synthgen")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
