#!/bin/sh
# Source checks that the compiler does not make: banned functions (as curl's checksrc).
set -eu
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|strncpy|gets)[[:space:]]*\('
if grep -nE "$banned" $(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 2>/dev/null) /dev/null; then
    echo "lint: banned function used (see STYLE.md section 4)" >&2
    exit 1
fi
echo "lint: ok"
