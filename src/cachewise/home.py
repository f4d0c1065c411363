"""Where cachewise keeps what it keeps on this machine: `$CACHEWISE_HOME`, else the user data
folder (`~/.local/share/cachewise` on Linux). It holds the ledger, its spool, the token-count
cache, the tokenizer's snapshot and the demo's files; every command reads the variable when it
needs the folder, so a test or a second installation can point it elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_home"]


def default_home() -> Path:
    """`$CACHEWISE_HOME`, else `<user data dir>/cachewise`."""
    home = os.environ.get("CACHEWISE_HOME")
    if home:
        return Path(home)
    import platformdirs

    return Path(platformdirs.user_data_dir("cachewise", appauthor=False))
