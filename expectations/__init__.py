"""Great Expectations suites per layer and table (data, not code)."""
