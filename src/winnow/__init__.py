"""winnow: a production recommendation engine (retrieve -> rank -> re-rank, served over HTTP)."""

__version__ = "0.1.0"
