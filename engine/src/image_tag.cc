#include "reconcile/image_tag.h"

#include <algorithm>
#include <regex>
#include <tuple>

namespace reconcile {

namespace {

constexpr size_t kShortSha = 12;

const std::vector<std::string>& TemplateVariables() {
  static const std::vector<std::string> kVars = {"sha", "fullSha", "timestamp", "version", "agent"};
  return kVars;
}

bool IsTagChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string Where(const Agent& agent, const std::string& field) {
  return agent.location.file + ":" + std::to_string(agent.location.line) + ": agent '" +
         agent.name + "': " + field;
}

std::string ShortSha(const TagFacts& facts) {
  if (!facts.git && !facts.context_digest.empty()) {
    return "tree-" + facts.context_digest.substr(0, kShortSha);
  }
  return facts.revision.substr(0, std::min(facts.revision.size(), kShortSha));
}

// "2026-12-01T12:06:06Z" -> "20261201T120606Z".
std::string CompactTime(const std::string& rfc3339) {
  std::string out;
  for (char c : rfc3339) {
    if (c != '-' && c != ':') out += c;
  }
  return out;
}

struct SemverKey {
  long major = 0, minor = 0, patch = 0;
  bool release = true;  // no pre-release part
  std::string pre;
  auto Tie() const { return std::tie(major, minor, patch, release, pre); }
};

bool ParseSemver(const std::string& text, SemverKey* key, std::string* normalized) {
  static const std::regex kSemver(
      R"(^v?(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$)");
  std::smatch m;
  if (!std::regex_match(text, m, kSemver)) return false;
  if (key) {
    key->major = std::stol(m[1]);
    key->minor = std::stol(m[2]);
    key->patch = std::stol(m[3]);
    key->release = !m[4].matched;
    key->pre = m[4].matched ? m[4].str() : "";
  }
  if (normalized) {
    *normalized = text[0] == 'v' ? text.substr(1) : text;
    std::replace(normalized->begin(), normalized->end(), '+', '_');
  }
  return true;
}

// The version of a build: spec.build.version, else the highest semantic
// version among the commit's Git tags; empty when there is none.
std::string VersionOf(const Agent& agent, const TagFacts& facts) {
  if (agent.build && !agent.build->version.empty()) return SemverOf(agent.build->version);
  std::string best;
  SemverKey best_key;
  for (const std::string& t : facts.git_tags) {
    SemverKey key;
    std::string v;
    if (!ParseSemver(t, &key, &v)) continue;
    if (best.empty() || best_key.Tie() < key.Tie()) {
      best = v;
      best_key = key;
    }
  }
  return best;
}

std::string TimestampOf(const TagFacts& facts) {
  if (!facts.commit_time.empty()) return CompactTime(facts.commit_time);
  return CompactTime(facts.context_mtime);
}

}  // namespace

std::string SemverOf(const std::string& text) {
  std::string v;
  return ParseSemver(text, nullptr, &v) ? v : "";
}

bool IsValidTag(const std::string& tag) {
  if (tag.empty() || tag.size() > 128 || tag[0] == '.' || tag[0] == '-') return false;
  return std::all_of(tag.begin(), tag.end(), IsTagChar);
}

std::string CheckTagTemplate(const std::string& tmpl) {
  if (tmpl.empty()) return "the template is empty";
  for (size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if (c == '{') {
      size_t close = tmpl.find('}', i);
      if (close == std::string::npos)
        return "'{' at offset " + std::to_string(i) + " is not closed";
      std::string name = tmpl.substr(i + 1, close - i - 1);
      const auto& vars = TemplateVariables();
      if (std::find(vars.begin(), vars.end(), name) == vars.end()) {
        return "unknown variable {" + name +
               "} (known: {sha}, {fullSha}, {timestamp}, {version}, {agent})";
      }
      i = close;
    } else if (c == '}') {
      return "'}' at offset " + std::to_string(i) + " has no '{'";
    } else if (!IsTagChar(c)) {
      return std::string("character '") + c + "' is not allowed in a tag ([A-Za-z0-9_.-])";
    }
  }
  return "";
}

Result<std::string> ImageTag(const Agent& agent, const Registry& registry, const TagFacts& facts) {
  std::string tag;
  switch (registry.tag_strategy) {
    case TagStrategy::kGitSha:
      tag = ShortSha(facts);
      break;
    case TagStrategy::kSemver:
      tag = VersionOf(agent, facts);
      if (tag.empty()) {
        return Status::Invalid(Where(agent, "spec.build.version") + ": Registry '" + registry.name +
                               "' has tagStrategy semver, but spec.build.version is not set" +
                               (facts.git ? " and commit " + facts.revision.substr(0, kShortSha) +
                                                " has no Git tag like v1.2.3"
                                          : " (a folder source has no Git tags)"));
      }
      break;
    case TagStrategy::kTimestamp:
      tag = TimestampOf(facts);
      if (tag.empty()) {
        return Status::Invalid(Where(agent, "spec.registry") + ": Registry '" + registry.name +
                               "' has tagStrategy timestamp, but the revision has no time");
      }
      break;
    case TagStrategy::kCustom: {
      if (std::string bad = CheckTagTemplate(registry.custom_tag); !bad.empty()) {
        return Status::Invalid(registry.location.file + ":" +
                               std::to_string(registry.location.line) + ": registry '" +
                               registry.name + "': spec.customTag: " + bad);
      }
      const std::string& t = registry.custom_tag;
      for (size_t i = 0; i < t.size(); ++i) {
        if (t[i] != '{') {
          tag += t[i];
          continue;
        }
        size_t close = t.find('}', i);
        std::string name = t.substr(i + 1, close - i - 1);
        i = close;
        if (name == "sha") {
          tag += ShortSha(facts);
        } else if (name == "fullSha") {
          tag += facts.revision;
        } else if (name == "timestamp") {
          tag += TimestampOf(facts);
        } else if (name == "agent") {
          tag += agent.name;
        } else if (name == "version") {
          std::string v = VersionOf(agent, facts);
          if (v.empty()) {
            return Status::Invalid(Where(agent, "spec.build.version") + ": Registry '" +
                                   registry.name +
                                   "' uses {version} in customTag, but spec.build.version is not "
                                   "set and the commit has no Git tag like v1.2.3");
          }
          tag += v;
        }
      }
      break;
    }
  }
  if (!IsValidTag(tag)) {
    return Status::Invalid(Where(agent, "spec.registry") + ": Registry '" + registry.name +
                           "' gives the tag '" + tag.substr(0, 140) +
                           "', which is not a valid image tag (1..128 of [A-Za-z0-9_.-], not "
                           "starting with '.' or '-')");
  }
  return tag;
}

std::string ImageReference(const Registry& registry, const std::string& tag) {
  std::string repo =
      registry.url.empty() ? registry.repository : registry.url + "/" + registry.repository;
  return repo + ":" + tag;
}

}  // namespace reconcile
