"""BentoML service: /recommend and health endpoints over the registered models and the online store."""
