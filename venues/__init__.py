"""venues feature package."""
