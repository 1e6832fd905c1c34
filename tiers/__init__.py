"""User tiers: value, lifecycle and churn risk from what each user did, as of a date."""
