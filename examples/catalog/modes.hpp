#pragma once
// The three ways the demo serves a product page (the product and its
// category's summary) and a price update: straight from the database, through
// cachet's cache-aside with the stampede guard stack, and the same with an
// in-process tier in front of Redis.

#include "database.hpp"
#include "model.hpp"

#include <cachet/cachet.hpp>

#include <charconv>
#include <functional>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace catalog {

struct Page {
  Product product;
  CategorySummary category;
};

struct HitCount {
  std::uint64_t hits = 0, misses = 0;
  HitCount operator-(const HitCount& before) const { return {hits - before.hits, misses - before.misses}; }
  double ratio() const { return hits + misses == 0 ? 0 : static_cast<double>(hits) / static_cast<double>(hits + misses); }
};

// A page's two lookups: the product, and its category's summary (which nearly always hits).
struct CacheCounts {
  HitCount products, categories;
  CacheCounts operator-(const CacheCounts& before) const {
    return {products - before.products, categories - before.categories};
  }
  double hit_ratio() const { return HitCount{products.hits + categories.hits, products.misses + categories.misses}.ratio(); }
};

class Mode {
 public:
  virtual ~Mode() = default;
  virtual std::string name() const = 0;
  virtual Page read(Session& db, std::int64_t id) = 0;
  virtual Product update(Session& db, std::int64_t id, double price) = 0;
  // Loads the given products (and every category) before the measured run,
  // reporting the products' progress (cachet::warm).
  using WarmReport = std::function<void(const cachet::WarmProgress&)>;
  virtual cachet::WarmResult warm(Database&, const std::vector<std::int64_t>&, std::int64_t /*categories*/,
                                  const WarmReport&) {
    return {};
  }
  virtual std::optional<CacheCounts> counts() const { return std::nullopt; }
};

inline std::int64_t parse_id(std::string_view text) {
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || end != text.data() + text.size()) throw std::invalid_argument("not an id: " + std::string(text));
  return id;
}

// Every request a database query (two for a page: the product, the category).
class NoCache final : public Mode {
 public:
  std::string name() const override { return "no cache"; }
  Page read(Session& db, std::int64_t id) override {
    std::optional<Product> p = db.product(id);
    if (!p) throw std::runtime_error("product " + std::to_string(id) + " is missing from the database");
    std::optional<CategorySummary> c = db.category(p->category_id);
    if (!c) throw std::runtime_error("category " + std::to_string(p->category_id) + " is missing");
    return {std::move(*p), std::move(*c)};
  }
  Product update(Session& db, std::int64_t id, double price) override { return db.update_price(id, price); }
};

// The database session a WriteThrough writer uses: the calling thread's (one
// writer object serves every thread), and the version its last write committed.
inline thread_local Session* writer_session = nullptr;
inline thread_local std::int64_t written_version = 0;

// Writes the new price and returns the row's new version (ordering cache writes).
struct PriceWriter {
  std::int64_t operator()(std::string_view id, const Product& p) const {
    return written_version = writer_session->update_price(parse_id(id), p.price).version;
  }
};

inline std::string tag_of(std::int64_t category) { return "category:" + std::to_string(category); }

// Cache-aside with the stampede guard stack (over Redis, or over an in-process
// tier in front of it): products by id, category summaries tagged with their
// category. An update writes through (write-through attached to the product
// cache): the database first, then, in one atomic step, the product's entry
// deleted (the next read loads the new row; over a tier, this process's L1 too)
// and its category's summaries dropped by tag. A read that loaded the old row
// meanwhile cannot write it back (WriteThrough's write versions).
// The caches are made in place (`make_products()`, `make_categories()`): they do not move.
template <class ProductCache, class CategoryCache>
class Cached final : public Mode {
 public:
  template <class MakeProducts, class MakeCategories>
  Cached(std::string name, MakeProducts make_products, MakeCategories make_categories)
      : name_(std::move(name)),
        products_(make_products()),
        categories_(make_categories()),
        writer_(cachet::write_through(products_, PriceWriter{}, {.on_write = cachet::CacheUpdate::del})) {
    categories_.tag_loaded_values([](const CategorySummary& c) { return std::vector<std::string>{tag_of(c.id)}; });
    writer_.invalidate_after_write(
        [](std::string_view, const Product& p) { return cachet::Targets{.tags = {tag_of(p.category_id)}}; });
  }

  std::string name() const override { return name_; }

  Page read(Session& db, std::int64_t id) override {
    std::optional<Product> p = products_.get_or_load(std::to_string(id), [&db](std::string_view k) { return db.product(parse_id(k)); });
    if (!p) throw std::runtime_error("product " + std::to_string(id) + " is missing");
    std::optional<CategorySummary> c = categories_.get_or_load(
        std::to_string(p->category_id), [&db](std::string_view k) { return db.category(parse_id(k)); });
    if (!c) throw std::runtime_error("category " + std::to_string(p->category_id) + " is missing");
    return {std::move(*p), std::move(*c)};
  }

  // The product as the page shows it, with the new price, written through.
  Product update(Session& db, std::int64_t id, double price) override {
    Product p = read(db, id).product;
    p.price = price;
    writer_session = &db;
    if (writer_.put(std::to_string(id), p) == cachet::WriteOutcome::unrepaired)
      throw std::runtime_error("the cache kept an old value");
    p.version = written_version;  // what the update committed, for the freshness check
    return p;
  }

  // Four batches of 500 at once, each on a database session of its own; a
  // warm write never replaces a value a writer stored meanwhile.
  cachet::WarmResult warm(Database& db, const std::vector<std::int64_t>& ids, std::int64_t categories,
                          const WarmReport& report) override {
    std::vector<std::string> keys;
    keys.reserve(ids.size());
    for (std::int64_t id : ids) keys.push_back(std::to_string(id));
    const std::vector<std::string_view> views(keys.begin(), keys.end());
    auto load = [&db](std::span<const std::string_view> batch) {
      const std::unique_ptr<Session> session = db.session();
      std::vector<std::optional<Product>> out;
      for (auto k : batch) out.push_back(session->product(parse_id(k)));
      return out;
    };
    cachet::WarmResult r = cachet::warm(products_, views, load, {.batch_size = 500, .concurrency = 4, .on_progress = report});
    const std::unique_ptr<Session> session = db.session();
    for (std::int64_t c = 1; c <= categories; ++c)
      categories_.get_or_load(std::to_string(c), [&](std::string_view k) { return session->category(parse_id(k)); });
    return r;
  }

  std::optional<CacheCounts> counts() const override {
    auto of = [](const cachet::CacheMetrics& m) {
      return HitCount{m.value(cachet::Event::hit) + m.value(cachet::Event::stale_hit), m.value(cachet::Event::miss)};
    };
    return CacheCounts{of(products_.metrics()), of(categories_.metrics())};
  }

 private:
  std::string name_;
  mutable ProductCache products_;  // mutable: counts() reads their metrics
  mutable CategoryCache categories_;
  cachet::WriteThrough<ProductCache, PriceWriter> writer_;  // attached to products_
};

}  // namespace catalog
