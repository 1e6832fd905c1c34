"""The synthetic world: a simulator of a private-domain brand's customers, catalogue and stock, with ground truth."""
