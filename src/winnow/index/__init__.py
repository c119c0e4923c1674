"""winnow.index."""
