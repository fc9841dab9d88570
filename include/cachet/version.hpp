#pragma once

#define CACHET_VERSION_MAJOR 0
#define CACHET_VERSION_MINOR 1
#define CACHET_VERSION_PATCH 0

namespace cachet {
inline constexpr const char* version = "0.1.0";
}  // namespace cachet
