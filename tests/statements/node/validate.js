// Validates xAPI statements with Learning Locker's validator, one per line.
// Reads JSON lines on stdin, each {"key": ..., "statement": {...}}; writes one JSON
// line per input, {"key": ..., "warnings": [{"type", "path", "message"}]}, in order.
"use strict";

const readline = require("readline");
const validate = require("@learninglocker/xapi-validation").default;

function describe(warning) {
  return {
    type: warning.constructor.name,
    path: (warning.path || []).join("."),
    message: warning.message || "",
  };
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on("line", (line) => {
  if (!line.trim()) {
    return;
  }
  let key = null;
  let warnings;
  try {
    const request = JSON.parse(line);
    key = request.key;
    warnings = validate(request.statement).map(describe);
  } catch (error) {
    warnings = [{ type: "InputError", path: "", message: String(error) }];
  }
  process.stdout.write(JSON.stringify({ key, warnings }) + "\n");
});
