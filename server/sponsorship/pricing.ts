/**
 * Pricing rules (docs/architecture.md, "Pricing"), pure: gas in wei is priced in fen at a quote locked when the sponsorship is signed.
 *
 *   charge = ceil(actualGasCost × fenPerNative × (10000 + markupBps) / (1e18 × 10000))
 *   hold   = the same formula on the worst case: (every gas limit, paymaster limits included) × maxFeePerGas
 *
 * Rounding is up, in the operator's favour: a charge is never below the cost. Integers only.
 */

/** A locked quote: fen per 1e18 wei of the chain's native token, plus a markup in basis points. */
export type Quote = { fenPerNative: bigint; markupBps: number };

export type GasLimits = {
  callGasLimit: bigint;
  verificationGasLimit: bigint;
  preVerificationGas: bigint;
  paymasterVerificationGasLimit: bigint;
  paymasterPostOpGasLimit: bigint;
  maxFeePerGas: bigint;
};

const WEI_PER_NATIVE = 10n ** 18n;
const BPS = 10_000n;

export class PricingError extends Error {
  override name = "PricingError";
}

function checkQuote(quote: Quote): void {
  if (quote.fenPerNative <= 0n) throw new PricingError("fenPerNative must be positive");
  if (!Number.isInteger(quote.markupBps) || quote.markupBps < 0 || quote.markupBps > 100_000) {
    throw new PricingError(`markupBps must be a whole number in [0, 100000]: got ${quote.markupBps}`);
  }
}

/** ceil(a / b) for non-negative a and positive b. */
function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

/** What `gasCostWei` costs in fen at `quote`, rounded up. */
export function chargeFen(gasCostWei: bigint, quote: Quote): bigint {
  checkQuote(quote);
  if (gasCostWei < 0n) throw new PricingError("a gas cost cannot be negative");
  return ceilDiv(gasCostWei * quote.fenPerNative * (BPS + BigInt(quote.markupBps)), WEI_PER_NATIVE * BPS);
}

/** The most an operation can cost: every gas limit, the paymaster's included, at maxFeePerGas. */
export function maxGasCostWei(gas: GasLimits): bigint {
  const limits = [gas.callGasLimit, gas.verificationGasLimit, gas.preVerificationGas, gas.paymasterVerificationGasLimit, gas.paymasterPostOpGasLimit];
  if ([...limits, gas.maxFeePerGas].some((v) => v < 0n)) throw new PricingError("gas values cannot be negative");
  return limits.reduce((sum, v) => sum + v, 0n) * gas.maxFeePerGas;
}

/** The hold reserved before signing: the worst-case charge at the locked quote. */
export function holdFen(gas: GasLimits, quote: Quote): bigint {
  return chargeFen(maxGasCostWei(gas), quote);
}
