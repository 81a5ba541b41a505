#!/usr/bin/env bash
# Extracts the C and Python snippets from README.md and runs them, so the README cannot rot.
# (The Rust snippet is a doctest of the core crate.)
# Usage: scripts/readme-snippets.sh <staticlib> <python> <valgrind command...>
set -euo pipefail
lib=$1 py=$2
shift 2
mkdir -p build
awk '/^```c$/{on=1; next} /^```$/{on=0} on' README.md > build/readme.c
awk '/^```python$/{on=1; next} /^```$/{on=0} on' README.md > build/readme.py
test -s build/readme.c && test -s build/readme.py
cc -Wall -Wextra -Werror -std=c11 -Iinclude build/readme.c "$lib" -lpthread -ldl -lm -o build/readme_c
"$@" ./build/readme_c
"$py" build/readme.py
echo "readme snippets: C and Python ran"
