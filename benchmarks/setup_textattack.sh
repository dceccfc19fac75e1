#!/usr/bin/env bash
# The peer environment of benchmarks/peer_textattack.py: TextAttack 0.3.11 in .venv-textattack, beside transformers<5
# (TextAttack 0.3.11 does not run on transformers 5, rift's), with the same CPU torch as rift's .venv.
# WordNet for NLTK comes from Debian (wordnet-base, and wordnet-sense-index for the index.sense file NLTK opens);
# the benchmark builds NLTK's data folder from them, so nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/wordnet/index.sense ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null) \
    || echo "setup_textattack: could not install wordnet-base and wordnet-sense-index" >&2
fi
[ -x .venv-textattack/bin/python ] || python3 -m venv .venv-textattack
pip=(.venv-textattack/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" "textattack==0.3.11" "transformers<5"
echo "TextAttack environment ready: .venv-textattack"
