"""winnow.data."""
