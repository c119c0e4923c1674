"""winnow.serving."""
