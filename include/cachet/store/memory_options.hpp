#pragma once
// The limits of an in-process store (MemoryStore, ValueStore) and what it reports.

#include <cstddef>
#include <cstdint>

namespace cachet {

struct MemoryStoreOptions {
  std::size_t max_entries = 100'000;         // across all shards
  std::size_t max_bytes = std::size_t{64} << 20;  // key + value bytes across all shards
  // Rounded up to a power of two, then halved while a shard would get fewer
  // than 64 entries. Each shard gets 1/shards of both limits.
  std::size_t shards = 16;
};

struct MemoryStoreStats {
  std::size_t size = 0;           // entries held, expired ones not reclaimed yet included
  std::size_t bytes = 0;          // their key + value bytes
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;       // absent or expired
  std::uint64_t evictions = 0;    // live entries dropped to make room
  std::uint64_t expirations = 0;  // expired entries reclaimed
  std::uint64_t rejected = 0;     // sets not stored: key + value larger than a shard's max_bytes
  std::uint64_t refused = 0;      // conditional writes not stored: their key was invalidated since (ValueStore)
};

}  // namespace cachet
