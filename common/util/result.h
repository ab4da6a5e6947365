// Result<T>: a value or an Error, the return type of every fallible library call.
//
// std::expected arrives with C++23; this is the small subset we need. Status is Result<void>.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include "error.h"

namespace rbdluks {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T val) : v_(std::move(val)) {}      // NOLINT(google-explicit-constructor)
  Result(Error err) : v_(std::move(err)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error err) : error_(std::move(err)), failed_(true) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& {
    assert(failed_);
    return error_;
  }
  Error&& error() && {
    assert(failed_);
    return std::move(error_);
  }

 private:
  Error error_{Errc::failure, ""};
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace rbdluks

// Returns the error of a failed Result/Status from the enclosing function.
#define RL_TRY(expr)                                               \
  do {                                                             \
    auto rl_try_result_ = (expr);                                  \
    if (!rl_try_result_) return std::move(rl_try_result_).error(); \
  } while (0)

#define RL_CONCAT_INNER(a, b) a##b
#define RL_CONCAT(a, b) RL_CONCAT_INNER(a, b)
// RL_ASSIGN(auto x, f()) declares x from a successful Result or returns its error.
#define RL_ASSIGN(decl, expr) RL_ASSIGN_IMPL(RL_CONCAT(rl_assign_, __LINE__), decl, expr)
#define RL_ASSIGN_IMPL(tmp, decl, expr)    \
  auto tmp = (expr);                       \
  if (!tmp) return std::move(tmp).error(); \
  decl = std::move(tmp).value()
