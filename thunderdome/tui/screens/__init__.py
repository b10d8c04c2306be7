"""The TUI's screens: setup, race, results, help."""
