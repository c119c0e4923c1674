"""winnow.pipeline."""
