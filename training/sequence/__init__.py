"""The decision-path model: a causal transformer over each user's interaction steps, and what it is measured against."""
