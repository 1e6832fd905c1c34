"""The HTTP side of the service: request and response models, middleware, the pricing endpoint."""
