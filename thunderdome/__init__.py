"""Thunderdome: race LLM backends against each other, live, in the terminal.

The core (events, metrics, config, backends, sim, race, sandbox, record,
report) never imports Textual; the TUI in ``thunderdome.tui`` is one consumer
of the event stream among others.
"""

__version__ = "0.1.0"
