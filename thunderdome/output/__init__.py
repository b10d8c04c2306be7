"""The consumers besides the TUI: the headless reporter (live lines and the
final table) and the exports (JSON, CSV, Markdown), each reading the
event stream through the core's reducer."""
