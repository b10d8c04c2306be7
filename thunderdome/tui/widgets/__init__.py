"""The TUI's widgets: lanes, token stream, leaderboard, chart, clock, banner, and the
results screen's parts (winner card, results table, recording note, next race)."""
