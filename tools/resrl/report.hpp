// JSON reports (--report, and policy-loss on stdout) through nlohmann-json.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "args.hpp"
#include "io.hpp"

namespace resrl::cli {

/// Keys stay in the order they are written (nlohmann::json would sort them).
using json = nlohmann::ordered_json;

/// A floating-point value of a report: its shortest round-trip text, or
/// null when it is NaN or infinite (JSON has no such numbers). Integers go
/// into a json as they are and print as integers.
json json_real(double v);

/// A float keeps the shortest text that gives back the float (0.575403, not
/// the 0.5754029750823975 of its exact double).
json json_real(float v);

/// The document as written to a file: two-space indentation, final newline.
std::string report_text(const json& report);

/// Stages the report for --report, if given.
void stage_report(const parsed_args& args, staged_outputs& files, const json& report);

}  // namespace resrl::cli
