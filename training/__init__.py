"""Model training, tuning, evaluation, promotion and the `siyu` CLI."""
