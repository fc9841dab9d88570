#pragma once
// What every test binary parses: precompiled once when CACHET_TEST_PCH is on
// (the asan preset, where clang saves a quarter of each test's compile). g++
// loads its whole ~370 MB image into every test, which costs more than the
// parse it saves (dev: codecs_test 11 -> 16 CPU-s, pool_test 10 -> 15), so dev
// and tsan leave it off, and a test which forgets an #include still fails there.
#include <cachet/cachet.hpp>
#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
