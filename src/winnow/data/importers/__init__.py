"""winnow.data.importers."""
