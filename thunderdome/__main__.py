from thunderdome.cli import main

raise SystemExit(main())
