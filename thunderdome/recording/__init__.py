"""Recordings: the recorder (a race's events to JSON lines, scrubbed, written
off the stamping loop) and the loader (any recording, hostile or of an
older format, read back to events or refused in one line)."""
