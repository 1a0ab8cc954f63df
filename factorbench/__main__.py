from factorbench.cli import main

raise SystemExit(main())
