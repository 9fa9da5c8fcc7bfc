"""Speed measurements: ``make bench`` (reported figures, not pass/fail tests)."""
