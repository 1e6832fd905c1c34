"""The data layer: the event contract, the synthetic world, importers and identity resolution."""
