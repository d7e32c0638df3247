#!/bin/sh
# Source checks that the compiler does not make: banned functions (as curl's checksrc).
set -eu
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|strncpy|gets)[[:space:]]*\('
if grep -nE "$banned" $(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 2>/dev/null) /dev/null; then
    echo "lint: banned function used (see STYLE.md section 4)" >&2
    exit 1
fi
# the command line uses libberth through its public headers (include/berth/) and its own
if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"(base|oci|store|server|client|backend)/' \
    $(git ls-files 'src/cli/*.c' 'src/cli/*.h' 2>/dev/null) /dev/null; then
    echo "lint: src/cli includes an internal header: give the CLI what it needs in include/berth/" >&2
    exit 1
fi
# the committed .clang-format, as STYLE.md section 8 says (clang-format 14, Debian 12)
if command -v clang-format >/dev/null; then
    clang-format --dry-run -Werror $(git ls-files '*.c' '*.h') || {
        echo "lint: run 'make format'" >&2
        exit 1
    }
fi
echo "lint: ok"
