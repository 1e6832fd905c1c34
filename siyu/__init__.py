"""siyu core: configuration and the data layer (event contract, generator, importers, identity)."""
