"""Recommendation logic behind the endpoints, free of BentoML: candidates, ranking, rules, item-to-item, reach lists."""
