# Sourced by scripts/demo and scripts/test: create .venv and install csi-edge into it.
# Re-running is cheap: the install is skipped while pyproject.toml and the extras asked for are unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CSI_EDGE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "csi-edge: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.csi-edge-installed"
hash="$(sha256sum < "$ROOT/pyproject.toml" | cut -c1-16)"
want="$hash $EXTRAS"
have="$(cat "$stamp" 2>/dev/null || true)"
# Up to date when pyproject.toml is unchanged and the extras asked for are already installed
# (the test extras include everything the demo needs).
up_to_date=false
if [ "$have" = "$want" ] || { [ -z "$EXTRAS" ] && [ "${have%% *}" = "$hash" ]; }; then up_to_date=true; fi
if [ "$up_to_date" != true ]; then
  echo "csi-edge: installing csi-edge${EXTRAS:+[$EXTRAS]} into $VENV (first run takes a few minutes)" >&2
  spec="$ROOT"
  [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
  # torch is pinned in the same command: any other torch spec pulls gigabytes of CUDA packages.
  torch_pin=()
  case "$EXTRAS" in *export*) torch_pin=("torch==2.13.0") ;; esac
  # The filter hides this machine's pip-config notes about local index folders; errors still show
  # and pip's exit status is kept.
  pip_install() { "$VENV/bin/python" -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
  pip_install --upgrade pip
  pip_install -e "$spec" "${torch_pin[@]}"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
