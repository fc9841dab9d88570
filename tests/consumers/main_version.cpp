// A program built from an installed cachet without CMake (pkg-config) or
// without zstd: the headers, the version macros and a Pool compile and link.
#include <cachet/cachet.hpp>

#include <iostream>

static_assert(CACHET_VERSION == CACHET_VERSION_MAJOR * 10000 + CACHET_VERSION_MINOR * 100 + CACHET_VERSION_PATCH);
static_assert(CACHET_VERSION >= 200);

int main() {
  cachet::PoolOptions options{.size = 1};
  std::cout << "consumer ok (cachet " << cachet::version << ", " << CACHET_VERSION << ", pool of " << options.size
            << ")\n";
  return 0;
}
