"""winnow.training."""
