"""Demand models and the inventory-aware price optimiser."""

# The longest plan anyone may ask for (periods), shared by the CLI, the planner and the HTTP endpoint.
MAX_HORIZON = 365
