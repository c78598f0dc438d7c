"""Data contracts, concept maps, value sets and dataset definitions (data, not code)."""
