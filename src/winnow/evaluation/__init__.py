"""winnow.evaluation."""
