"""Feast feature repo: entities, sources and feature views, built in code from the event tables."""
