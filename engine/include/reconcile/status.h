// Status and Result<T>: errors as values at module boundaries.
//
// A Status carries a Code that tells the caller the retry policy:
//   kInvalid      the input (spec, plan, state file) is wrong; retrying the same
//                 input will fail again. Stop until the input changes.
//   kUnavailable  a transient failure (connection refused, 5xx, timeout);
//                 retry with backoff.
//   kConflict     the world is not as expected (name taken by something we do
//                 not own, stale plan, lock held); a person must act.
//   kCancelled    a stop was requested (SIGTERM, Ctrl-C) and the work was
//                 abandoned safely; not retried in this run, the next run
//                 converges.
//   kNotFound, kFailed, kInternal: as named; not retried.
//
// Status and Result are plain values: copyable, not thread-safe to mutate
// from several threads at once (like any std type).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace reconcile {

enum class Code {
  kOk,
  kInvalid,
  kNotFound,
  kConflict,
  kUnavailable,
  kFailed,
  kInternal,
  kCancelled
};

// Returns a stable lower-case name ("invalid", "unavailable", ...).
const char* CodeName(Code code);

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status Invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Failed(std::string m) { return {Code::kFailed, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // True when retrying the same operation later may succeed.
  bool retryable() const { return code_ == Code::kUnavailable; }

  // Returns a copy whose message is "<prefix>: <message>".
  Status WithContext(const std::string& prefix) const {
    if (ok()) return *this;
    return Status(code_, prefix + ": " + message_);
  }

  std::string ToString() const;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a value or a non-ok Status. Accessing value() on an error is a
// programming error (asserts in debug builds).
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace reconcile
