"""Helpers shared by floy's test tiers: waiting on conditions, reading the store's tables."""
