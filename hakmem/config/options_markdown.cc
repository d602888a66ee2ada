// Prints the runtime options table of docs/tuning.md from options.h's list:
// every HAKMEM_<NAME>, its default (the value an empty environment gives) and its
// help. tools/gen_tuning.sh writes it into the page; tuning_doc_test fails when
// the page differs.
#include <cstdint>
#include <cstdio>
#include <string>

#include "hakmem/config/options.h"

namespace hakmem::config {
namespace {

std::string Format(bool value) { return value ? "1" : "0"; }
std::string Format(uint64_t value) { return std::to_string(value); }
std::string Format(const char* value) { return value != nullptr ? value : "unset"; }
std::string Format(InvalidFreePolicy value) {
  return value == InvalidFreePolicy::kAbort ? "abort" : "warn";
}
std::string Format(ThpPolicy value) {
  switch (value) {
    case ThpPolicy::kAuto:
      return "auto";
    case ThpPolicy::kAlways:
      return "always";
    case ThpPolicy::kNever:
      break;
  }
  return "never";
}

// The help as Markdown table text: "<prefix>" would read as an HTML tag.
std::string Escape(const char* text) {
  std::string out;
  for (; *text != '\0'; ++text) {
    if (*text == '<') {
      out += "&lt;";
    } else if (*text == '>') {
      out += "&gt;";
    } else if (*text == '|') {
      out += "\\|";
    } else {
      out += *text;
    }
  }
  return out;
}

void Print() {
  const Options defaults;
  std::printf("| Variable | Default | What it does |\n|---|---|---|\n");
#define HAKMEM_OPTION_ROW(NAME, field, type, default_value, help)                     \
  std::printf("| `HAKMEM_" #NAME "` | `%s` | %s |\n", Format(defaults.field).c_str(), \
              Escape(help).c_str());
  HAKMEM_OPTION_LIST(HAKMEM_OPTION_ROW)
#undef HAKMEM_OPTION_ROW
}

}  // namespace
}  // namespace hakmem::config

int main() {
  hakmem::config::Print();
  return 0;
}
