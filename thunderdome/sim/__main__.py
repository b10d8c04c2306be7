"""``python -m thunderdome.sim [--host H] [--port P] [--time-scale X]``: serve the emulator."""

from __future__ import annotations

import sys

from thunderdome.sim.launch import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main(sys.argv[1:]))
