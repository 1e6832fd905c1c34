"""Demand models and the inventory-aware price optimiser."""
