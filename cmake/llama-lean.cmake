# Passed to llama-cpp-python's build as CMAKE_PROJECT_INCLUDE (see the Makefile), so CMake runs it
# after each project() call. llama-cpp-python forces llama.cpp's "common" library on (a cache entry
# set with FORCE), yet its Python bindings load only libllama and ggml: common is half the compile
# time and lands unused in site-packages/lib. A normal variable shadows the forced cache entry
# (policy CMP0126), so common is neither built nor installed.
set(LLAMA_BUILD_COMMON OFF)
