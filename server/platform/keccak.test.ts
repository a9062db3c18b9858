import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { getAddress, isAddress } from "viem";
import { addressProblem, checksummed } from "../schemas/primitives";
import { checksumAddress, keccakImplementation } from "./keccak";

describe("EIP-55 checksums with the native keccak", () => {
  it("runs on the native binding here", () => {
    assert.equal(keccakImplementation, "native");
  });

  it("equals viem's getAddress for 2,000 random addresses, from lower, upper and checksummed case", () => {
    for (let i = 0; i < 2_000; i++) {
      const lower = `0x${randomBytes(20).toString("hex")}`;
      const expected = getAddress(lower);
      assert.equal(checksumAddress(lower), expected);
      assert.equal(checksumAddress(`0x${lower.slice(2).toUpperCase()}`), expected);
      assert.equal(checksumAddress(expected), expected);
      assert.equal(checksummed(lower), expected);
    }
  });

  it("matches EIP-55's own examples", () => {
    // the test vectors of https://eips.ethereum.org/EIPS/eip-55
    for (const address of ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"]) {
      assert.equal(checksumAddress(address.toLowerCase()), address);
    }
  });

  it("addressProblem accepts what viem's strict isAddress accepts and calls the rest a checksum error", () => {
    for (let i = 0; i < 500; i++) {
      const good = getAddress(`0x${randomBytes(20).toString("hex")}`);
      assert.equal(addressProblem(good), undefined);
      // one letter's case flipped: a typo EIP-55 catches (unless the address has no letters to flip)
      const at = [...good.slice(2)].findIndex((c) => /[a-fA-F]/.test(c));
      if (at < 0) continue;
      const c = good[at + 2]!;
      const typo = `${good.slice(0, at + 2)}${c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()}${good.slice(at + 3)}`;
      if (typo.slice(2) === typo.slice(2).toLowerCase() || typo.slice(2) === typo.slice(2).toUpperCase()) continue;
      assert.equal(isAddress(typo, { strict: true }), false);
      assert.equal(addressProblem(typo), "checksum");
    }
  });
});
