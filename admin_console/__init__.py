"""admin_console feature package."""
