#pragma once
// A dependency map: declare once what a change to an entity invalidates, and
// let the write path say only which entity changed — the articles' event-driven
// invalidation without an ORM hook.
//
//   cachet::DependencyMap deps(tags, &versions);
//   deps.on("product", [&](std::string_view id) {
//     return cachet::Targets{.keys = {products.key(id)}, .tags = {"product:" + std::string(id)},
//                            .namespaces = {"product_list"}};
//   });
//   db.update_product(p);
//   deps.invalidate_for("product", p.id);   // one round trip, one atomic script
//
// invalidate_for gathers the targets of every rule declared for the entity and
// removes them in ONE script (RedisStore::invalidate, through the Tags' store):
// the keys are UNLINKed, the tags invalidated as Tags::invalidate does, the
// namespaces' version counters INCRed (and the process's cached versions
// updated at once). Errors are thrown: a failed invalidation is never silent.
//
// Declare rules before sharing the map; invalidate_for is then thread-safe.
// Redis Cluster: the script's keys must share a slot, so use HashTag::ns and
// keys of the same namespace. Without HashTag::ns tags are version counters
// (Tags::versioned): the targets' tags are bumped first (TagVersions), apart
// from the script, which then holds only the keys and namespaces.

#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/invalidation/tags.hpp>
#include <cachet/store/write.hpp>

#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

// What a change to one entity invalidates.
struct Targets {
  std::vector<std::string> keys{};        // full keys (CacheAside::key(id), KeyBuilder::value)
  std::vector<std::string> tags{};        // tags, as given to Tags
  std::vector<std::string> namespaces{};  // value names whose version is bumped
};

// Targets as the invalidation script takes them: tag-set keys (and the tag
// epoch), keys, version counters (and the process's versions to tell of the bumps); with
// `versioned_tags` (Tags::versioned) the tags are left out of the script, for
// TagVersions::invalidate. Throws std::invalid_argument for namespaces without
// a NamespaceVersions.
struct ResolvedTargets {
  ResolvedTargets(const Targets& t, const KeyBuilder& keys, NamespaceVersions* versions, bool versioned_tags = false) {
    if (!t.namespaces.empty() && !versions)
      throw std::invalid_argument("cachet: namespaces to bump but no NamespaceVersions given");
    if (versioned_tags) tags = t.tags;
    else
      for (const auto& tag : t.tags) script.tag_sets.push_back(keys.tag(tag));
    if (!script.tag_sets.empty()) script.tag_epoch = keys.tag_epoch();  // as Tags::invalidate
    script.keys = t.keys;
    for (const auto& name : t.namespaces) {
      names.push_back(&versions->of(name));
      script.counters.push_back(names.back()->counter_key());
    }
  }

  // After the script ran: this process sees the new versions at once.
  void bumped(const InvalidationResult& r) const {
    for (std::size_t i = 0; i < names.size() && i < r.versions.size(); ++i) names[i]->bumped(r.versions[i]);
  }

  bool empty() const noexcept { return script.empty() && tags.empty(); }

  InvalidationTargets script;
  std::vector<std::string> tags;  // versioned tags, bumped apart from the script
  std::vector<NamespaceVersion*> names;
};

struct InvalidationReport {
  std::size_t deleted = 0;  // keys that existed: tagged values and plain keys
  std::size_t tags = 0, namespaces = 0;
};

class DependencyMap {
 public:
  using Rule = std::function<Targets(std::string_view id)>;

  // `tags` (and `versions`, needed only by rules that name namespaces) must outlive the map.
  explicit DependencyMap(Tags& tags, NamespaceVersions* versions = nullptr) : tags_(&tags), versions_(versions) {}

  // Adds a rule for `entity`; several rules for one entity add up.
  DependencyMap& on(std::string entity, Rule rule) {
    rules_[std::move(entity)].push_back(std::move(rule));
    return *this;
  }

  // Everything the rules of `entity` name for `id` (empty if none are declared).
  Targets targets_for(std::string_view entity, std::string_view id) const {
    Targets all;
    const auto it = rules_.find(entity);
    if (it == rules_.end()) return all;
    for (const Rule& rule : it->second) {
      Targets t = rule(id);
      append(all.keys, t.keys);
      append(all.tags, t.tags);
      append(all.namespaces, t.namespaces);
    }
    return all;
  }

  // Invalidates what `entity` `id` affects, in one atomic script. Throws on Redis
  // errors, and std::invalid_argument for an entity with no rule (a typo must not
  // pass for a successful invalidation) or a namespace without `versions`.
  InvalidationReport invalidate_for(std::string_view entity, std::string_view id) {
    if (rules_.find(entity) == rules_.end())
      throw std::invalid_argument("cachet::DependencyMap: no rule for entity '" + std::string(entity) + "'");
    return invalidate(targets_for(entity, id));
  }

  // The same for an integral id (a row's key), as its decimal digits: what the rules see.
  template <std::integral Id>
    requires(!std::same_as<Id, bool> && !std::same_as<Id, char>)
  InvalidationReport invalidate_for(std::string_view entity, Id id) {
    return invalidate_for(entity, std::string_view(std::to_string(id)));
  }

  // Invalidates explicit targets the same way.
  InvalidationReport invalidate(const Targets& t) {
    const ResolvedTargets resolved(t, tags_->keys(), versions_, tags_->versioned());
    TagVersions(tags_->store(), tags_->keys()).invalidate(resolved.tags);  // nothing for no tags
    if (!resolved.tags.empty() && resolved.script.empty()) return {0, t.tags.size(), 0};
    const InvalidationResult r = tags_->store().invalidate(resolved.script);
    resolved.bumped(r);
    return {r.deleted, t.tags.size(), t.namespaces.size()};
  }

 private:
  static void append(std::vector<std::string>& to, std::vector<std::string>& from) {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  }

  Tags* tags_;
  NamespaceVersions* versions_;
  std::map<std::string, std::vector<Rule>, std::less<>> rules_;
};

}  // namespace cachet
