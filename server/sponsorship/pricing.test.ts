import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PricingError, chargeFen, holdFen, maxGasCostWei } from "./pricing";

// ¥25,000 per ETH = 2,500,000 fen per 1e18 wei
const quote = { fenPerNative: 2_500_000n, markupBps: 1_000 }; // +10 %

describe("pricing", () => {
  it("charges cost × price × (1 + markup), rounded up to the next fen", () => {
    // 0.001 ETH → 2,500 fen → +10 % = 2,750 fen exactly
    assert.equal(chargeFen(10n ** 15n, quote), 2_750n);
    // one wei more than an exact fen boundary costs a whole extra fen
    assert.equal(chargeFen(10n ** 15n + 1n, quote), 2_751n);
    // any non-zero cost costs at least one fen
    assert.equal(chargeFen(1n, quote), 1n);
    assert.equal(chargeFen(0n, quote), 0n);
  });

  it("never charges less than the cost at the quoted price (no rounding in the user's favour)", () => {
    for (let i = 0; i < 1_000; i++) {
      const cost = BigInt(Math.floor(Math.random() * 1e15)) * 997n;
      const fen = chargeFen(cost, { fenPerNative: 2_500_000n, markupBps: 0 });
      assert.ok(fen * 10n ** 18n >= cost * 2_500_000n);
      assert.ok((fen - 1n) * 10n ** 18n < cost * 2_500_000n, "and by less than one fen");
    }
  });

  it("holds the worst case: every gas limit at maxFeePerGas", () => {
    const gas = {
      callGasLimit: 100_000n,
      verificationGasLimit: 400_000n,
      preVerificationGas: 50_000n,
      paymasterVerificationGasLimit: 40_000n,
      paymasterPostOpGasLimit: 0n,
      maxFeePerGas: 2_000_000_000n,
    };
    assert.equal(maxGasCostWei(gas), 590_000n * 2_000_000_000n);
    assert.equal(holdFen(gas, quote), chargeFen(590_000n * 2_000_000_000n, quote));
    assert.ok(holdFen(gas, quote) >= chargeFen(123_456n * 1_500_000_000n, quote), "any actual cost within the limits fits in the hold");
  });

  it("is exact with values far beyond 2^53", () => {
    assert.equal(chargeFen(3n * 10n ** 30n, { fenPerNative: 10n ** 12n, markupBps: 0 }), 3n * 10n ** 24n);
  });

  it("refuses negative costs and impossible quotes", () => {
    assert.throws(() => chargeFen(-1n, quote), PricingError);
    assert.throws(() => chargeFen(1n, { fenPerNative: 0n, markupBps: 0 }), /fenPerNative/);
    assert.throws(() => chargeFen(1n, { fenPerNative: 1n, markupBps: 1.5 }), /markupBps/);
    assert.throws(() => maxGasCostWei({ callGasLimit: -1n, verificationGasLimit: 0n, preVerificationGas: 0n, paymasterVerificationGasLimit: 0n, paymasterPostOpGasLimit: 0n, maxFeePerGas: 1n }), /negative/);
  });
});
