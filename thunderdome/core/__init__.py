"""The core: the event stream and the figures read from it, with the small
helpers every layer uses (errors and exit codes, bounded reads, secrets
redacted, control codes made visible). No UI, no race, no network: every
other layer imports from here and nothing here imports them."""
