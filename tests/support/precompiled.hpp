#pragma once
// What every test binary parses: precompiled once when CACHET_TEST_PCH is on
// (the asan preset, where it saves a quarter of each test's compile; under
// g++ -O1 (tsan) it saves nothing). The dev preset leaves it off, so that a
// test or header which forgets an #include still fails there.
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
