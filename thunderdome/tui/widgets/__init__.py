"""The TUI's widgets: lanes, token stream, leaderboard, chart, clock, banner."""
