# SPDX-License-Identifier: Apache-2.0
# cmake -DSRC=DIR -DOUT=FILE -DFLAGS=TEXT -P remote_build.cmake: write FILE, a header defining
# BERTH__REMOTE_BUILD, a fingerprint of the sources under DIR (include/, src/) and of FLAGS (the
# compiler and the build's options). The berth program and berth-remote.so are built with the
# same one, and the program loads no module built with another (src/remote/loader.c): their calls
# into each other, and the structures they pass, are those of one version of the sources.
file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE "${SRC}" "${SRC}/include/*.h"
     "${SRC}/src/*.c" "${SRC}/src/*.h")
list(SORT files)
set(all "${FLAGS}\n")
foreach(f IN LISTS files)
  file(SHA256 "${SRC}/${f}" h)
  string(APPEND all "${f} ${h}\n")
endforeach()
string(SHA256 id "${all}")
string(SUBSTRING "${id}" 0 32 id)
set(text "/* written by scripts/remote_build.cmake: the sources' fingerprint */\n")
string(APPEND text "#define BERTH__REMOTE_BUILD \"${id}\"\n")
file(WRITE "${OUT}" "${text}")
