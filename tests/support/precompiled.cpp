// The object whose compile builds the tests' precompiled header (tests/CMakeLists.txt).
