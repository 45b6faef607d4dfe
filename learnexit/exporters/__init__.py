"""Export formats: one module per format, registered by name (see base.py)."""

from .base import REGISTRY, Exporter, ExportJob, TableSpec, TableWriter, load_builtin, register

__all__ = ["REGISTRY", "Exporter", "ExportJob", "TableSpec", "TableWriter", "load_builtin", "register"]
