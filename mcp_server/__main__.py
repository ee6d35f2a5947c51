import sys

from mcp_server._cli import main

sys.exit(main())
