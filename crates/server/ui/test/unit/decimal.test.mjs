import { test } from "node:test";
import assert from "node:assert/strict";
import { canonical, compare, isDecimal, isZero } from "../../js/decimal.js";

test("canonical spellings: one key per value", () => {
  const cases = [
    ["100", "100"],
    ["100.0", "100"],
    ["100.00", "100"],
    ["0100.10", "100.1"],
    ["0", "0"],
    ["0.00000", "0"],
    ["-0.0", "0"],
    ["0.00100000", "0.001"],
    ["-1.50", "-1.5"],
  ];
  for (const [text, want] of cases) assert.equal(canonical(text), want, text);
});

test("zero in any spelling", () => {
  for (const z of ["0", "0.0", "0.00000", "00", "-0"]) assert.ok(isZero(z), z);
  for (const nz of ["0.00001", "1", "10", "-0.1"]) assert.ok(!isZero(nz), nz);
});

test("exact comparison, beyond what a float can tell apart", () => {
  const cases = [
    ["1", "2", -1],
    ["10", "9", 1],
    ["100.5", "100.50", 0],
    ["65000.10", "65000.1", 0],
    ["0.1", "0.09", 1],
    ["-1", "1", -1],
    ["-2", "-1", -1],
    // 2^53 + 1 and 2^53 are equal as doubles.
    ["9007199254740993", "9007199254740992", 1],
    ["0.30000000000000001", "0.3", 1],
  ];
  for (const [a, b, want] of cases) {
    assert.equal(compare(a, b), want, `${a} vs ${b}`);
    assert.equal(compare(b, a), want === 0 ? 0 : -want, `${b} vs ${a}`);
  }
});

test("what is not a decimal is refused", () => {
  for (const bad of ["", "1e5", "1.", ".5", "+1", "abc", "1,5", " 1", "NaN"]) {
    assert.ok(!isDecimal(bad), bad);
    assert.throws(() => canonical(bad), TypeError, bad);
  }
  assert.ok(!isDecimal(5));
});
