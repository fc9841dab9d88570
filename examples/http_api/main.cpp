// An HTTP JSON API over the catalog database, cached per route: the C++
// counterpart of article 002's Express middleware, with cpp-httplib.
//
//   GET  /products/:id             the product, cached under its route
//   GET  /categories/:id           the category summary, cached and tagged category:<id>
//   PUT  /products/:id {"price":x} a WriteThrough: the database, then the product's route
//                                  and its category's summary (by tag) dropped in one step
//   GET  /uncached/...             the same two GETs, always from the database
//   GET  /metrics                  every cache's metrics, in the Prometheus text format
//   writes (PUT, POST, DELETE) are rate-limited per client: 429 with Retry-After and RateLimit-* headers
//   POST /login {"user":"u"}       a session cookie (a new id, even for a visitor's session: fixation)
//   GET  /me                       the session's user and visit count (401 without a live session)
//   POST /logout                   the session ended, the cookie cleared
//
//   http_api serve [--listen P]    serve on 127.0.0.1:P (8080) until interrupted
//   http_api load  [--seconds S] [--threads N]   cached vs uncached from a built-in client
//   http_api check                 a PUT is visible to the next GET (exit 1 if not)
//   common flags: [--products N] [--db-file PATH] [--socket PATH | --host H --port P] [--password PW]

#include "../catalog/model.hpp"
#include "../catalog/sqlite_catalog.hpp"
#include "../catalog/workload.hpp"
#include "../common/cli.hpp"

#include <cachet/cachet.hpp>

#include <httplib.h>
#include <openssl/rand.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using catalog::CategorySummary;
using catalog::Product;

struct Args {
  std::string command;
  int port = 8080, seconds = 3, threads = 4;
  catalog::Shape shape{.products = 10'000, .categories = 20};
  std::string db_file;
};

// A database session per server thread (cpp-httplib serves from a thread pool).
class Sessions {
 public:
  explicit Sessions(catalog::Database& db) : db_(db) {}
  catalog::Session& mine() {
    std::lock_guard lock(mutex_);
    auto& s = by_thread_[std::this_thread::get_id()];
    if (!s) s = db_.session();
    return *s;
  }

 private:
  catalog::Database& db_;
  std::mutex mutex_;
  std::map<std::thread::id, std::unique_ptr<catalog::Session>> by_thread_;
};

// Rate limiting: writes (PUT, POST, DELETE) are limited per client (the
// X-Client-Id header, else the address) by a GCRA in Redis, 10 a second and 20
// at once; over it, a 429 with Retry-After. Every limited reply carries the
// RateLimit-* headers. While Redis is down, each server limits on its own.
cachet::RateLimiter write_limiter(cachet::Pool& pool) {
  return cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 10, .period = std::chrono::seconds(1), .burst = 20},
                                   {.name = "api-writes", .deny_cache = 10'000, .on_redis_down = cachet::OnRedisDown::local});
}

void limit_writes(httplib::Server& server, cachet::RateLimiter& limiter) {
  server.set_pre_routing_handler([&limiter](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "GET" || req.method == "HEAD") return httplib::Server::HandlerResponse::Unhandled;
    const std::string client = req.has_header("X-Client-Id") ? req.get_header_value("X-Client-Id") : req.remote_addr;
    const cachet::RateLimitResult r = limiter.allow(client);
    for (const auto& [name, value] : cachet::rate_limit_headers(r)) res.set_header(name, value);
    if (r.allowed) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 429;
    res.set_content(nlohmann::json{{"error", "too many writes, retry after " + cachet::retry_after_header(r) + " s"}}.dump(),
                    "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
}

// Login and logout with a session cookie (docs/sessions.md). The cookie holds
// only the signed id; the session lives in Redis. Login regenerates the id, so a
// visitor's id planted before the login is worth nothing after it.
class LoginRoutes {
 public:
  explicit LoginRoutes(cachet::Pool& pool)
      : sessions_(cachet::make_session_store(pool, {.idle = std::chrono::minutes(30), .absolute = std::chrono::hours(12),
                                                    .max_per_user = 5, .secrets = {"demo-secret-rotate-me"}})) {}

  void install(httplib::Server& server) {
    server.Post("/login", [this](const httplib::Request& req, httplib::Response& res) { login(req, res); });
    server.Post("/logout", [this](const httplib::Request& req, httplib::Response& res) {
      if (const auto id = cookie(req)) try {
          sessions_.destroy(*id);
        } catch (const cachet::InvalidSessionId&) {  // nothing to end
        }
      res.set_header("Set-Cookie", "sid=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
      res.set_content(R"({"ok":true})", "application/json");
    });
    server.Get("/me", [this](const httplib::Request& req, httplib::Response& res) { me(req, res); });
  }

 private:
  void login(const httplib::Request& req, httplib::Response& res) {
    std::string user;
    try {
      user = nlohmann::json::parse(req.body).at("user").get<std::string>();
    } catch (const nlohmann::json::exception&) {
    }
    if (user.empty()) return error(res, 400, "body must be {\"user\": \"name\"}");
    std::string id;  // (a real login checks a password here)
    try {
      if (const auto old = cookie(req)) id = sessions_.regenerate(*old, user);
    } catch (const cachet::SessionError&) {  // forged, expired or ended: start afresh
    }
    if (id.empty()) id = sessions_.create(user);
    res.set_header("Set-Cookie", "sid=" + id + "; Path=/; HttpOnly; SameSite=Lax");
    res.set_content(nlohmann::json{{"user", user}}.dump(), "application/json");
  }

  void me(const httplib::Request& req, httplib::Response& res) {
    try {
      const auto id = cookie(req);
      const auto session = id ? sessions_.load(*id) : std::nullopt;
      if (!session) return error(res, 401, "no session");
      const int visits = std::stoi(std::string(session->get("visits").value_or("0"))) + 1;
      sessions_.set(*id, "visits", std::to_string(visits));  // one attribute: a concurrent request's stay
      res.set_content(nlohmann::json{{"user", session->user()}, {"visits", visits}}.dump(), "application/json");
    } catch (const cachet::SessionNotFound&) {  // ended while this request ran
      error(res, 401, "no session");
    } catch (const cachet::InvalidSessionId&) {
      error(res, 401, "no session");
    }
  }

  static std::optional<std::string> cookie(const httplib::Request& req) {
    const std::string header = req.get_header_value("Cookie");
    for (std::size_t at = 0; at < header.size();) {
      const std::size_t end = std::min(header.find(';', at), header.size());
      std::string_view pair(header.data() + at, end - at);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      if (pair.starts_with("sid=")) return std::string(pair.substr(4));
      at = end + 1;
    }
    return std::nullopt;
  }
  static void error(httplib::Response& res, int status, const char* message) {
    res.status = status;
    res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
  }

  cachet::SessionStore sessions_;
};

// Login, a visit, a second login (a new id: the old cookie is dead), logout.
bool check_login(httplib::Client& client) {
  auto sid = [](const httplib::Result& r) {
    const std::string c = r ? r->get_header_value("Set-Cookie") : "";
    return c.substr(0, c.find(';'));
  };
  auto me = [&](const std::string& cookie) {
    const auto r = client.Get("/me", {{"Cookie", cookie}});
    return r ? r->status : 0;
  };
  const std::string first = sid(client.Post("/login", R"({"user":"ada"})", "application/json"));
  const auto second_login = client.Post("/login", {{"Cookie", first}}, R"({"user":"ada"})", "application/json");
  const std::string second = sid(second_login);
  const bool ok = me(second) == 200 && me(first) == 401 && first != second &&
                  client.Post("/logout", {{"Cookie", second}}, "", "application/json") && me(second) == 401;
  std::printf("login, login again (id regenerated), logout: %s\n", ok ? "ok" : "FAILED");
  return ok;
}

// The API: route responses cached as JSON text in plain format, so
// `redis-cli GET api:products:/products/42` shows what a client would get.
// Category summaries are tagged with their category, for updates to drop.
class Api {
  using RouteCache = cachet::Cache<std::string, cachet::StringCodec>;

 public:
  Api(catalog::Database& db, cachet::Pool& pool)
      : sessions_(db),
        products_(route_cache(pool, "products")),
        categories_(route_cache(pool, "categories")),
        writes_(cachet::write_through(products_, PriceWriter{this}, {.on_write = cachet::CacheUpdate::del})),
        write_limit_(write_limiter(pool)),
        login_(pool) {
    writes_.invalidate_after_write([](std::string_view, const std::string& body) {
      return cachet::Targets{.tags = {tag_of(nlohmann::json::parse(body).at("category_id").get<std::int64_t>())}};
    });
    categories_.tag_loaded_values([](const std::string& body) {
      if (body.empty()) return std::vector<std::string>{};  // not found: nothing to tag
      return std::vector<std::string>{tag_of(nlohmann::json::parse(body).at("id").get<std::int64_t>())};
    });
  }

  // Fills the product routes of products 1..n before traffic (cachet::warm):
  // batches of 200, four at once, each on its own database session.
  cachet::WarmResult warm_products(std::int64_t n, const std::function<void(const cachet::WarmProgress&)>& report) {
    std::vector<std::string> routes;
    for (std::int64_t id = 1; id <= n; ++id) routes.push_back("/products/" + std::to_string(id));
    const std::vector<std::string_view> ids(routes.begin(), routes.end());
    return cachet::warm(products_, ids, [this](std::span<const std::string_view> batch) {
      std::vector<std::optional<std::string>> out;
      for (auto route : batch) out.emplace_back(json_of(sessions_.mine().product(std::stoll(std::string(route.substr(10))))));
      return out;
    }, {.batch_size = 200, .concurrency = 4, .on_progress = report});
  }

  void install(httplib::Server& server) {
    server.set_tcp_nodelay(true);  // else small keep-alive replies wait out the client's delayed ACK (40 ms)
    limit_writes(server, write_limit_);
    login_.install(server);
    server.Get("/metrics", guarded([](const httplib::Request&, httplib::Response& res) {  // for Prometheus to scrape
      res.set_content(cachet::MetricsRegistry::global().prometheus(), "text/plain; version=0.0.4; charset=utf-8");
    }));
    server.Get(R"(/products/(\d+))",
               guarded([this](const httplib::Request& req, httplib::Response& res) { reply(res, product_route(req)); }));
    server.Get(R"(/uncached/products/(\d+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      reply(res, json_of(sessions_.mine().product(std::stoll(req.matches[1]))));
    }));
    server.Get(R"(/uncached/categories/(\d+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      reply(res, json_of(sessions_.mine().category(std::stoll(req.matches[1]))));
    }));
    server.Get(R"(/categories/(\d+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      reply(res, categories_.get_or_load(req.path, [this, id = std::stoll(req.matches[1])](std::string_view) {
        return json_of(sessions_.mine().category(id));
      }));
    }));
    server.Put(R"(/products/(\d+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      double price = 0;
      try {
        price = nlohmann::json::parse(req.body).at("price").get<double>();
      } catch (const nlohmann::json::exception& e) {
        res.status = 400;
        res.set_content(nlohmann::json{{"error", std::string("body must be {\"price\": number}: ") + e.what()}}.dump(),
                        "application/json");
        return;
      }
      const std::string current = product_route(req);
      if (current.empty()) return reply(res, current);
      auto next = nlohmann::json::parse(current);
      next["price"] = price;
      writes_.put(req.path, next.dump());  // the database, then the route and its category's summary dropped
      reply(res, product_route(req));      // the row as committed, loaded again
    }));
  }

 private:
  // What a handler throws is answered as JSON (cpp-httplib alone answers a bare
  // 500): a cachet error (a write-through's cache step while Redis is down, a
  // lock wait that timed out) is a 503 a client may retry, anything else a 500.
  template <class Handler>
  static httplib::Server::Handler guarded(Handler handler) {
    return [handler](const httplib::Request& req, httplib::Response& res) {
      try {
        handler(req, res);
      } catch (const cachet::Error& e) {
        res.status = 503;
        res.set_content(nlohmann::json{{"error", e.what()}}.dump(), "application/json");
      } catch (const std::exception& e) {
        res.status = 500;
        res.set_content(nlohmann::json{{"error", e.what()}}.dump(), "application/json");
      }
    };
  }

  std::string product_route(const httplib::Request& req) {
    return products_.get_or_load(req.path, [this, id = std::stoll(req.matches[1])](std::string_view) {
      return json_of(sessions_.mine().product(id));
    });
  }

  template <class T>
  static std::string json_of(const std::optional<T>& v) {
    return v ? nlohmann::json(*v).dump() : std::string();  // "" = not found, cached like any answer
  }
  static void reply(httplib::Response& res, const std::string& body) {
    if (body.empty()) {
      res.status = 404;
      res.set_content(R"({"error":"not found"})", "application/json");
    } else {
      res.set_content(body, "application/json");
    }
  }

  // PUT's writer: the new price into the database; returns the row's version.
  struct PriceWriter {
    Api* api;
    std::int64_t operator()(std::string_view path, const std::string& body) const {
      const std::int64_t id = std::stoll(std::string(path.substr(path.rfind('/') + 1)));
      return api->sessions_.mine().update_price(id, nlohmann::json::parse(body).at("price").get<double>()).version;
    }
  };

  static RouteCache route_cache(cachet::Pool& pool, const char* name) {
    return cachet::make_cache<std::string, cachet::StringCodec>(
        pool, {.ns = "api", .name = name, .ttl = cachet::TtlPolicy({.fresh = std::chrono::minutes(5)}),
               .format = cachet::Format::plain});
  }
  static std::string tag_of(std::int64_t category) { return "category:" + std::to_string(category); }

  Sessions sessions_;
  RouteCache products_, categories_;
  cachet::WriteThrough<RouteCache, PriceWriter> writes_;  // attached to products_: a PUT drops its route
  cachet::RateLimiter write_limit_;
  LoginRoutes login_;
};

// The server on a thread, on a free loopback port, stopped when this goes.
class Running {
 public:
  explicit Running(Api& api) {
    api.install(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("cannot bind a loopback port");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Bound already: a client that connects before listen_after_bind runs waits in the backlog.
  }
  ~Running() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

int check(Api& api) {
  Running server(api);
  httplib::Client client("127.0.0.1", server.port());
  auto get = [&](const std::string& path) {
    const auto res = client.Get(path);
    if (!res || res->status != 200) throw std::runtime_error("GET " + path + " failed");
    return nlohmann::json::parse(res->body);
  };
  const auto before = get("/products/7");
  const std::string category = "/categories/" + std::to_string(before.at("category_id").get<std::int64_t>());
  const double average = get(category).at("avg_price").get<double>();  // cached now, as the product is
  const double price = before.at("price").get<double>() + 1.25;
  const auto put = client.Put("/products/7", nlohmann::json{{"price", price}}.dump(), "application/json");
  if (!put || put->status != 200) throw std::runtime_error("PUT /products/7 failed");
  const auto seen = get("/products/7");
  const double new_average = get(category).at("avg_price").get<double>();
  std::printf("GET, PUT price %.2f, GET: price %.2f, version %lld -> %lld; the category's average %.4f -> %.4f\n", price,
              seen.at("price").get<double>(), before.at("version").get<long long>(), seen.at("version").get<long long>(),
              average, new_average);
  const auto bad = client.Put("/products/7", "{\"cost\": 1}", "application/json");
  if (!bad || bad->status != 400) throw std::runtime_error("a malformed PUT was not refused with 400");
  const auto huge = client.Get("/products/99999999999999999999");  // std::stoll throws in the handler
  if (!huge || huge->status != 500 || huge->body.find("\"error\"") == std::string::npos)
    throw std::runtime_error("a handler's exception was not answered with a JSON 500");
  // Writes are rate-limited per client: a burst of PUTs meets a 429 with Retry-After.
  auto burst_put = [&] { return client.Put("/products/7", {{"X-Client-Id", "check-burst"}}, "{\"cost\": 1}", "application/json"); };
  auto limited = burst_put();
  for (int i = 1; i < 40 && limited && limited->status != 429; ++i) limited = burst_put();
  if (!limited || limited->status != 429 || !limited->has_header("Retry-After") ||
      limited->get_header_value("RateLimit-Limit") != "20")
    throw std::runtime_error("a burst of PUTs was not answered with 429, Retry-After and RateLimit-Limit: 20");
  std::printf("a burst of PUTs: 429, Retry-After %s s\n", limited->get_header_value("Retry-After").c_str());
  const bool fresh = seen.at("price").get<double>() == price && new_average > average;  // the summary's tag was dropped
  if (!fresh) std::fprintf(stderr, "http_api: FAILED: a GET after the PUT returned what was cached before it\n");
  const auto metrics = client.Get("/metrics");
  const bool scraped = metrics && metrics->status == 200 &&
                       metrics->body.find("cachet_hits_total{cache=\"api:products\"") != std::string::npos;
  if (!scraped) std::fprintf(stderr, "http_api: FAILED: GET /metrics has no cachet_hits_total of the products cache\n");
  else std::printf("GET /metrics: %zu bytes of Prometheus text\n", metrics->body.size());
  const bool logged = check_login(client);
  return fresh && scraped && logged ? 0 : 1;
}

int load(Api& api, const Args& a) {
  Running server(api);
  const catalog::Popularity popularity(a.shape.products, 0.99, a.shape.seed);
  std::printf("%d client threads, %d s each way, Zipf(0.99) over %lld products; a page is GET product + GET its category\n", a.threads,
              a.seconds, static_cast<long long>(a.shape.products));
  // A page view: the product, then its category's summary (the expensive query).
  for (const std::string prefix : {"/uncached", ""}) {
    std::atomic<bool> stop{false};
    std::mutex merge;
    std::vector<double> all;
    std::string first_error;
    std::vector<std::thread> clients;
    for (int t = 0; t < a.threads; ++t)
      clients.emplace_back([&, t] {
        httplib::Client client("127.0.0.1", server.port());
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);
        catalog::RequestStream stream(popularity, 0, static_cast<std::uint64_t>(t) + 1);
        std::vector<double> us;
        auto get = [&](const std::string& path) {
          const auto res = client.Get(path);
          if (!res || res->status != 200) throw std::runtime_error("GET " + path + " failed");
          return nlohmann::json::parse(res->body);
        };
        std::string error;
        try {
          while (!stop) {
            const auto t0 = std::chrono::steady_clock::now();
            const auto product = get(prefix + "/products/" + std::to_string(stream.next().id));
            get(prefix + "/categories/" + std::to_string(product.at("category_id").get<std::int64_t>()));
            us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
          }
        } catch (const std::exception& e) {  // reported below: a thread's exception would end the program unexplained
          error = e.what();
        }
        std::lock_guard lock(merge);
        all.insert(all.end(), us.begin(), us.end());
        if (first_error.empty()) first_error = error;
      });
    std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
    stop = true;
    for (auto& c : clients) c.join();
    if (!first_error.empty()) throw std::runtime_error("a client failed: " + first_error);
    const double rate = static_cast<double>(all.size()) / a.seconds;
    const double p50 = example::percentile(all, 0.5), p99 = example::percentile(all, 0.99);
    std::printf("  %-9s %8.0f pages/s   p50 %8.0f us   p99 %8.0f us\n", prefix.empty() ? "cached" : "uncached", rate, p50, p99);
  }
  return 0;
}

std::atomic<bool> interrupted{false};

// Start-up: the most viewed products warmed before the first request, the progress printed.
void warm_at_start(Api& api, std::int64_t products) {
  const cachet::WarmResult r = api.warm_products(std::min<std::int64_t>(products, 1000), [](const cachet::WarmProgress& p) {
    std::printf("\rwarming the product routes: %zu / %zu (%zu failed)", p.done, p.total, p.failed);
    std::fflush(stdout);
  });
  std::printf("\n%s", r.first_error.empty() ? "" : ("warming: " + r.first_error + "\n").c_str());
}

// A sensitive value (a customer's payment token) cached through Encrypted:
// Redis holds only AES-256-GCM ciphertext, bound to its key, so a value copied
// under another customer's key is a miss. A real deployment reads its 32-byte
// keys from a secret store (docs/encryption.md); this one makes a key per run.
bool show_encryption(cachet::Pool& pool) {
  std::string key(cachet::KeyRing::key_size, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1)
    throw std::runtime_error("no random key");
  using Tokens = cachet::Encrypted<cachet::StringCodec>;
  cachet::CacheAside<std::string, Tokens> tokens(cachet::RedisStore(pool),
                                                 {.ns = "api", .name = "payment_tokens", .ttl = cachet::TtlPolicy({.fresh = std::chrono::minutes(5)})},
                                                 Tokens(std::make_shared<cachet::KeyRing>(1, key)));
  tokens.set("customer-1", "tok_visa_4242");
  const std::string stored =
      pool.with([&](cachet::Connection& c) { return c.command({"GET", tokens.key("customer-1")}).as_string(); });
  pool.with([&](cachet::Connection& c) { c.command({"SET", tokens.key("customer-2"), stored}); });  // copied by an attacker
  const bool ok = tokens.get("customer-1") == "tok_visa_4242" && stored.find("tok_visa") == std::string::npos &&
                  !tokens.get("customer-2");
  std::printf("an encrypted token: %zu bytes in Redis, none of them the token; copied to another customer's key, it %s\n",
              stored.size(), tokens.get("customer-2") ? "READ (FAILED)" : "is a miss");
  return ok;
}

int serve(Api& api, const Args& a) {
  httplib::Server server;
  api.install(server);
  signal(SIGINT, [](int) { interrupted = true; });
  std::thread stopper([&] {
    while (!interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  std::printf("serving on http://127.0.0.1:%d (Ctrl-C stops)\n", a.port);
  const bool ok = server.listen("127.0.0.1", a.port);
  interrupted = true;
  stopper.join();
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli("http_api", "A small HTTP API over the catalog, cached with cachet.");
  Args a;
  CLI::App& app = cli.app();
  app.add_option("command", a.command, "serve, load (a load test) or check (a PUT is visible to the next GET)")
      ->required()
      ->check(CLI::IsMember({"serve", "load", "check"}));
  cli.positive("--listen", a.port, "port to serve on");
  cli.positive("--seconds", a.seconds, "load test duration");
  cli.positive("--threads", a.threads, "load test clients");
  cli.positive("--products", a.shape.products, "products in the catalog");
  app.add_option("--db-file", a.db_file, "SQLite file (default: one per shape in the temp directory)");
  cli.parse(argc, argv);
  try {
    const std::string file = !a.db_file.empty() ? a.db_file
                                                : (std::filesystem::temp_directory_path() /
                                                   ("cachet-api-" + std::to_string(a.shape.products) + ".sqlite")).string();
    catalog::SqliteCatalog db(file, a.shape, [](std::int64_t, std::int64_t) {});
    cachet::Pool pool(cli.redis(), {.size = 16});
    pool.with([](cachet::Connection& c) { c.command({"PING"}); });
    for (const char* name : {"products", "categories", "wv"})  // a server given may hold an earlier run's answers and versions
      cachet::invalidate_matching(pool, cachet::KeyBuilder("api").pattern(name));
    Api api(db, pool);
    warm_at_start(api, a.shape.products);
    if (!show_encryption(pool)) return 1;
    if (a.command == "check") return check(api);
    if (a.command == "load") return load(api, a);
    return serve(api, a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_api: %s\n", e.what());
    return 1;
  }
}
