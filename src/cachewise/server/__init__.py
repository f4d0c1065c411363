"""Local servers: the emulator (and, later, the proxy)."""
