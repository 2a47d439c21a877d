#include "report.hpp"

#include <charconv>
#include <cmath>

namespace resrl::cli {

json json_real(double v) {
  if (!std::isfinite(v)) return nullptr;
  return v;
}

json json_real(float v) {
  if (!std::isfinite(v)) return nullptr;
  // The double nearest to the float's shortest decimal form prints as that
  // form, and still reads back as the same float.
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, v).ptr;
  double widened = 0.0;
  std::from_chars(text, end, widened);
  return widened;
}

std::string report_text(const json& report) {
  // No file name or user text goes into a report, but a replacement
  // character beats an exception if one ever does.
  return report.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

void stage_report(const parsed_args& args, staged_outputs& files, const json& report) {
  if (args.has("--report")) files.add("--report", args.text("--report"), report_text(report));
}

}  // namespace resrl::cli
