import sys

from mcp_server._entry import main

sys.exit(main())
