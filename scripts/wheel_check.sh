#!/usr/bin/env bash
# The package as people install it: build the sdist and, from it, the wheel (`python -m build`);
# install the wheel with every extra it declares for users into a fresh virtual environment,
# with pip as configured on this machine; then run it there, away from the checkout's sources.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/cachewise-*.whl)
ls "$work"/dist/cachewise-*.tar.gz >/dev/null
# The extras from the wheel's own metadata, less the ones for working on cachewise itself.
extras=$("$python" - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    lines = whl.read(meta).decode().splitlines()
names = [l.split(":", 1)[1].strip() for l in lines if l.startswith("Provides-Extra:")]
print(",".join(n for n in names if n not in {"dev", "docs"}))
PY
)
echo "wheel: $(basename "$wheel"), extras: $extras"

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel[$extras]"

cd "$work"
export CACHEWISE_HOME="$work/home"
venv/bin/cachewise --version
venv/bin/cachewise models --format json >/dev/null
venv/bin/cachewise doctor
venv/bin/cachewise demo --out-dir "$work/demo"
echo "wheel check: ok"
