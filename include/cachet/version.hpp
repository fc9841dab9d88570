#pragma once

#define CACHET_VERSION_MAJOR 0
#define CACHET_VERSION_MINOR 2
#define CACHET_VERSION_PATCH 0
// One integer to compare, as fmt's FMT_VERSION: MAJOR * 10000 + MINOR * 100 + PATCH.
#define CACHET_VERSION (CACHET_VERSION_MAJOR * 10000 + CACHET_VERSION_MINOR * 100 + CACHET_VERSION_PATCH)

namespace cachet {
inline constexpr const char* version = "0.2.0";
}  // namespace cachet
