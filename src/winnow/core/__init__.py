"""winnow.core."""
