"""winnow.models."""
