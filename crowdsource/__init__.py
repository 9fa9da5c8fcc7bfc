"""crowdsource feature package."""
