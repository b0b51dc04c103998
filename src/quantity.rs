//! Kubernetes `resource.Quantity` parsing (`resources.requests/limits`,
//! `emptyDir.sizeLimit`, ...).
//!
//! podc turns quantities into systemd settings (`MemoryMax=` in bytes,
//! `CPUQuota=` from millicores), so it needs the exact value Kubernetes would
//! compute, not a float approximation: `0.1` CPU must be exactly 100
//! millicores and `1.5Gi` exactly 1610612736 bytes. Values are therefore
//! kept as an exact integer count of nano-units in an `i128`, which is also
//! Kubernetes' finest resolution (`resource.Nano`): like Kubernetes, any
//! non-zero amount below one nano-unit is rounded *up* (away from zero), on
//! the theory that asking for some resource should give some resource.
//!
//! The grammar is Kubernetes' `parseQuantityString` followed by its suffix
//! interpretation:
//!
//! ```text
//! <quantity> ::= <sign><digits>[.<digits>]<suffix>   (either digit run may be empty, not both)
//! <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei           (binarySI, powers of 1024)
//!              | n | u | m | "" | k | M | G | T | P | E  (decimalSI)
//!              | e<int32> | E<int32>                     (decimal exponent)
//! ```
//!
//! Deliberate differences from Kubernetes, both in the direction of
//! rejecting nonsense instead of guessing:
//! * Kubernetes' parser reads a quantity without any digit (`Mi`, `-`, `.`)
//!   as zero; podc rejects it, since such a value is a typo, and the regular
//!   expression quoted in Kubernetes' own error message requires a digit or dot.
//! * Kubernetes silently caps binarySI values at 2^63-1 and keeps arbitrary
//!   precision otherwise; podc reports an error when the exact value does not
//!   fit (magnitude above about 1.7e29, or more than 39 significant digits).

use std::fmt;
use std::str::FromStr;

/// Kubernetes' `ErrFormatWrong`, quoting the grammar as Kubernetes does.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Kubernetes' `ErrSuffix`, followed by the suffixes that are accepted.
pub const SUFFIX_ERROR: &str = "unable to parse quantity's suffix (accepted suffixes: Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E, or an exponent e<N>/E<N>)";

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;
/// 10^38 is the largest power of ten an `i128` holds.
const MAX_POW10: u32 = 38;
/// Enough for every `i128` nano value (39 digits); more is rejected.
const MAX_SIGNIFICANT_DIGITS: usize = 39;

/// How the quantity was written; Kubernetes keeps this to format the value
/// back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... (powers of 2).
    BinarySI,
    /// No suffix or `n u m k M G T P E`.
    DecimalSI,
    /// `e<N>` / `E<N>`.
    DecimalExponent,
}

/// An exact Kubernetes quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    /// The exact value in nano-units (10^-9), rounded up to a whole nano-unit.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// How the value was written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True for values below zero (`-0` is zero, not negative).
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// True for a zero value.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whole units rounded up, as Kubernetes' `Value()` does for memory:
    /// `0.5` -> 1, `1.5Gi` -> 1610612736. `None` for negative values and for
    /// values above `u64::MAX`.
    pub fn to_bytes_ceil(&self) -> Option<u64> {
        ceil_div_nonneg(self.nanos, NANOS_PER_UNIT)
    }

    /// Thousandths rounded up, as Kubernetes' `MilliValue()` does for CPU:
    /// `0.1` -> 100, `0.1m` -> 1. `None` for negative values and for values
    /// above `u64::MAX`.
    pub fn to_millis_ceil(&self) -> Option<u64> {
        ceil_div_nonneg(self.nanos, NANOS_PER_MILLI)
    }
}

impl FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl fmt::Display for Quantity {
    /// Plain decimal form (`1.5`, `0.000000001`, `-3`), exact, without
    /// suffix; meant for diagnostics, not for Kubernetes' canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let units = abs / NANOS_PER_UNIT as u128;
        let frac = abs % NANOS_PER_UNIT as u128;
        if frac == 0 {
            write!(f, "{sign}{units}")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{sign}{units}.{}", digits.trim_end_matches('0'))
        }
    }
}

fn ceil_div_nonneg(n: i128, d: i128) -> Option<u64> {
    if n < 0 || d <= 0 {
        return None;
    }
    let q = n / d;
    let q = if n % d != 0 { q.checked_add(1)? } else { q };
    u64::try_from(q).ok()
}

fn too_large() -> String {
    "quantity out of range: podc represents quantities exactly, with at most 39 significant digits and a magnitude below about 1.7e29".to_string()
}

/// The parts of a quantity string, as Kubernetes' `parseQuantityString`
/// splits them.
struct Parts<'a> {
    negative: bool,
    /// Integer digits, leading zeros removed.
    num: &'a str,
    /// Fraction digits.
    denom: &'a str,
    suffix: &'a str,
    /// Whether any digit appeared in the numeric part.
    any_digit: bool,
}

fn split(s: &str) -> Result<Parts<'_>, String> {
    let b = s.as_bytes();
    let mut pos = 0usize;
    let mut negative = false;
    match b.first() {
        Some(b'-') => {
            negative = true;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let digits_end = |from: usize| {
        b.get(from..)
            .and_then(|rest| rest.iter().position(|c| !c.is_ascii_digit()))
            .map_or(b.len(), |i| from + i)
    };
    let num_start = pos;
    let num_end = digits_end(num_start);
    let num_all = s.get(num_start..num_end).unwrap_or("");
    let num = num_all.trim_start_matches('0');
    pos = num_end;
    let mut denom = "";
    if b.get(pos) == Some(&b'.') {
        let denom_start = pos + 1;
        let denom_end = digits_end(denom_start);
        denom = s.get(denom_start..denom_end).unwrap_or("");
        pos = denom_end;
    }
    let any_digit = !num_all.is_empty() || !denom.is_empty();
    let suffix_start = pos;
    while let Some(c) = b.get(pos) {
        if b"eEinumkKMGTP".contains(c) {
            pos += 1;
        } else {
            break;
        }
    }
    if matches!(b.get(pos), Some(b'-') | Some(b'+')) {
        pos += 1;
    }
    pos = digits_end(pos);
    if pos != b.len() {
        return Err(FORMAT_ERROR.to_string());
    }
    Ok(Parts {
        negative,
        num,
        denom,
        suffix: s.get(suffix_start..).unwrap_or(""),
        any_digit,
    })
}

/// Kubernetes' suffix interpretation: (power of 2, power of 10, format).
fn interpret_suffix(suffix: &str) -> Result<(u32, i64, Format), String> {
    let decimal = |e: i64| Ok((0, e, Format::DecimalSI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => Ok((10, 0, Format::BinarySI)),
        "Mi" => Ok((20, 0, Format::BinarySI)),
        "Gi" => Ok((30, 0, Format::BinarySI)),
        "Ti" => Ok((40, 0, Format::BinarySI)),
        "Pi" => Ok((50, 0, Format::BinarySI)),
        "Ei" => Ok((60, 0, Format::BinarySI)),
        _ => {
            // `e<N>`/`E<N>` where N is a (signed) 32-bit integer, as
            // strconv.ParseInt(s[1:], 10, 32) accepts it.
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(|| SUFFIX_ERROR.to_string())?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(SUFFIX_ERROR.to_string());
            }
            let e: i32 = exp.parse().map_err(|_| SUFFIX_ERROR.to_string())?;
            Ok((0, i64::from(e), Format::DecimalExponent))
        }
    }
}

/// `ceil(r * 2^k / d)` for `0 <= r < d`, exactly, by binary long division
/// (no intermediate product can overflow because `r < d <= 10^38 < 2^127`).
fn ceil_frac_times_pow2(mut r: u128, k: u32, d: u128) -> u128 {
    let mut q: u128 = 0;
    for _ in 0..k {
        r <<= 1;
        q <<= 1;
        if r >= d {
            r -= d;
            q |= 1;
        }
    }
    if r > 0 {
        q + 1
    } else {
        q
    }
}

/// Parses a Kubernetes quantity such as `100m`, `0.5`, `64Mi`, `1G` or
/// `1e3` into its exact value. See the module documentation for the grammar.
pub fn parse(s: &str) -> Result<Quantity, String> {
    if s.is_empty() {
        return Err(FORMAT_ERROR.to_string());
    }
    let parts = split(s)?;
    let (pow2, pow10, format) = interpret_suffix(parts.suffix)?;
    if !parts.any_digit {
        return Err(FORMAT_ERROR.to_string());
    }

    // value = digits(num ++ denom) * 10^(pow10 - len(denom)) * 2^pow2, in
    // nano-units: add 9 to the decimal exponent.
    let mut sig = String::with_capacity(parts.num.len() + parts.denom.len());
    sig.push_str(parts.num);
    sig.push_str(parts.denom);
    let sig_lead = sig.trim_start_matches('0');
    let sig_trim = sig_lead.trim_end_matches('0');
    let trailing_zeros = sig_lead.len() - sig_trim.len();
    let format_value = |nanos: i128| Quantity { nanos, format };
    if sig_trim.is_empty() {
        return Ok(format_value(0));
    }
    let denom_len = i64::try_from(parts.denom.len()).map_err(|_| too_large())?;
    let trailing = i64::try_from(trailing_zeros).map_err(|_| too_large())?;
    let exp10 = pow10
        .checked_add(9)
        .and_then(|e| e.checked_sub(denom_len))
        .and_then(|e| e.checked_add(trailing))
        .ok_or_else(too_large)?;
    if sig_trim.len() > MAX_SIGNIFICANT_DIGITS {
        return Err(too_large());
    }
    let digits: u128 = sig_trim.parse().map_err(|_| too_large())?;

    let magnitude: u128 = if exp10 >= 0 {
        let e = u32::try_from(exp10).map_err(|_| too_large())?;
        if e > MAX_POW10 {
            return Err(too_large());
        }
        digits
            .checked_mul(10u128.pow(e))
            .and_then(|v| v.checked_mul(1u128 << pow2))
            .ok_or_else(too_large)?
    } else {
        // ceil(digits * 2^pow2 / 10^f), exactly. Divide by at most 10^38 in
        // one step (the largest power of ten a u128 holds comfortably), then
        // by the rest: ceil(ceil(a/b)/c) == ceil(a/(b*c)) for integers.
        let f = exp10.unsigned_abs();
        let first = f.min(u64::from(MAX_POW10));
        let rest = f - first;
        let d = 10u128.pow(u32::try_from(first).unwrap_or(MAX_POW10));
        let step = (digits / d)
            .checked_mul(1u128 << pow2)
            .and_then(|w| w.checked_add(ceil_frac_times_pow2(digits % d, pow2, d)))
            .ok_or_else(too_large)?;
        if rest == 0 {
            step
        } else if rest > u64::from(MAX_POW10) {
            // step <= 4 * 2^60 < 10^19: a non-zero amount below one
            // nano-unit, which Kubernetes rounds up to one.
            1
        } else {
            step.div_ceil(10u128.pow(u32::try_from(rest).unwrap_or(MAX_POW10)))
        }
    };
    let magnitude = i128::try_from(magnitude).map_err(|_| too_large())?;
    Ok(format_value(if parts.negative {
        -magnitude
    } else {
        magnitude
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> i128 {
        match parse(s) {
            Ok(q) => q.nanos(),
            Err(e) => panic!("parse({s:?}) failed: {e}"),
        }
    }

    const N: i128 = 1_000_000_000;

    #[test]
    fn decimal_si() {
        assert_eq!(nanos("1"), N);
        assert_eq!(nanos("0.5"), N / 2);
        assert_eq!(nanos("100m"), N / 10);
        assert_eq!(nanos("1G"), 1_000_000_000 * N);
        assert_eq!(nanos("1k"), 1000 * N);
        assert_eq!(nanos("1M"), 1_000_000 * N);
        assert_eq!(nanos("2T"), 2_000_000_000_000 * N);
        assert_eq!(nanos("3P"), 3_000_000_000_000_000 * N);
        assert_eq!(nanos("1E"), 1_000_000_000_000_000_000 * N);
        assert_eq!(nanos("1u"), 1000);
        assert_eq!(nanos("1n"), 1);
        assert_eq!(nanos("250m"), 250_000_000);
        assert_eq!(nanos("1.5"), 1_500_000_000);
        assert_eq!(nanos("+1"), N);
        assert_eq!(nanos("007"), 7 * N);
        assert_eq!(nanos(".5"), N / 2);
        assert_eq!(nanos("1."), N);
        assert_eq!(nanos("1.G"), N * N, "Kubernetes allows an empty fraction");
        assert_eq!(parse("1").map(|q| q.format()), Ok(Format::DecimalSI));
    }

    #[test]
    fn binary_si() {
        assert_eq!(nanos("1Ki"), 1024 * N);
        assert_eq!(nanos("64Mi"), 64 * 1024 * 1024 * N);
        assert_eq!(nanos("1.5Gi"), 1_610_612_736 * N);
        assert_eq!(nanos("1Ti"), (1i128 << 40) * N);
        assert_eq!(nanos("1Pi"), (1i128 << 50) * N);
        assert_eq!(nanos("1Ei"), (1i128 << 60) * N);
        assert_eq!(nanos("0.5Ki"), 512 * N);
        // 0.1Ki = 102.4 exactly.
        assert_eq!(nanos("0.1Ki"), 102_400_000_000);
        // 1/3 of nothing exact: 0.333Ki = 340.992
        assert_eq!(nanos("0.333Ki"), 340_992_000_000);
        assert_eq!(parse("1Mi").map(|q| q.format()), Ok(Format::BinarySI));
    }

    #[test]
    fn exponents() {
        assert_eq!(nanos("1e3"), 1000 * N);
        assert_eq!(nanos("1E3"), 1000 * N);
        assert_eq!(nanos("1e+3"), 1000 * N);
        assert_eq!(nanos("1e-3"), N / 1000);
        assert_eq!(nanos("1.5e2"), 150 * N);
        assert_eq!(nanos("12e0"), 12 * N);
        assert_eq!(nanos("0e99999"), 0);
        assert_eq!(
            parse("1e3").map(|q| q.format()),
            Ok(Format::DecimalExponent)
        );
        // Tiny but non-zero values round up to one nano-unit.
        assert_eq!(nanos("1e-10"), 1);
        assert_eq!(nanos("1e-2147483648"), 1);
        assert_eq!(nanos("-1e-100"), -1);
    }

    #[test]
    fn sub_nano_rounds_up_like_kubernetes() {
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("1.1n"), 2);
        assert_eq!(nanos("1.0n"), 1);
        assert_eq!(nanos("0.0000000001"), 1);
        assert_eq!(nanos("-0.1n"), -1);
        assert_eq!(
            nanos("0.000000000000000000000000000000000000000000000001Ei"),
            1
        );
        assert_eq!(nanos("0.0000000005Ki"), 512);
        assert_eq!(nanos("0.00000000001Ki"), 11);
    }

    #[test]
    fn zero_and_sign() {
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("-0"), 0);
        assert_eq!(nanos("+0.000"), 0);
        assert_eq!(nanos("0Mi"), 0);
        assert_eq!(nanos("0.0e5"), 0);
        assert_eq!(nanos("-1"), -N);
        assert_eq!(nanos("-100m"), -N / 10);
        assert!(parse("-1").is_ok_and(|q| q.is_negative()));
        assert!(parse("-0").is_ok_and(|q| !q.is_negative() && q.is_zero()));
    }

    #[test]
    fn bytes_round_up() {
        let b = |s: &str| parse(s).ok().and_then(|q| q.to_bytes_ceil());
        assert_eq!(b("64Mi"), Some(67_108_864));
        assert_eq!(b("1G"), Some(1_000_000_000));
        assert_eq!(b("1.5Gi"), Some(1_610_612_736));
        assert_eq!(b("0.5"), Some(1));
        assert_eq!(b("1"), Some(1));
        assert_eq!(b("1001m"), Some(2));
        assert_eq!(b("1000m"), Some(1));
        assert_eq!(b("0"), Some(0));
        assert_eq!(b("-0"), Some(0));
        assert_eq!(b("-1"), None);
        assert_eq!(b("-1n"), None);
        assert_eq!(b("15Ei"), Some(15 << 60));
        assert_eq!(b("16Ei"), None, "2^64 does not fit in u64");
        assert_eq!(b("18446744073709551615"), Some(u64::MAX));
        assert_eq!(b("18446744073709551616"), None);
        assert_eq!(b("18446744073709551614.5"), Some(u64::MAX));
    }

    #[test]
    fn millis_round_up() {
        let m = |s: &str| parse(s).ok().and_then(|q| q.to_millis_ceil());
        assert_eq!(m("100m"), Some(100));
        assert_eq!(m("0.5"), Some(500));
        assert_eq!(m("1"), Some(1000));
        assert_eq!(m("0.1m"), Some(1));
        assert_eq!(m("1n"), Some(1));
        assert_eq!(m("1000001n"), Some(2));
        assert_eq!(m("1.0001"), Some(1001));
        assert_eq!(m("2k"), Some(2_000_000));
        assert_eq!(m("0"), Some(0));
        assert_eq!(m("-100m"), None);
        assert_eq!(m("1e17"), None, "1e20 millicores does not fit in u64");
    }

    #[test]
    fn format_errors() {
        for s in [
            "", " 1", "1 ", "1.2.3", "1.1.M", "1+1.0M", "aoeu", "-3.01e-", "1e", "1Mi5x", "1,5",
            "0x10", "1_000", "0.1am", "0.5e-9Ki", "1KI", "1MB", "１", "1\n", "1\0", "--1", "+-1",
            "1ki ", "1.5.", "Mi ",
        ] {
            match parse(s) {
                Ok(q) => panic!("parse({s:?}) = {q:?}, want an error"),
                Err(e) => assert!(
                    e == FORMAT_ERROR || e == SUFFIX_ERROR,
                    "parse({s:?}): unexpected message {e}"
                ),
            }
        }
        assert_eq!(parse("1.2.3"), Err(FORMAT_ERROR.to_string()));
        assert_eq!(parse(""), Err(FORMAT_ERROR.to_string()));
        assert_eq!(
            FORMAT_ERROR,
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn suffix_errors() {
        for s in [
            "0.1mi",
            ".5i",
            "1i",
            "-3.01i",
            "1K",
            "1ki",
            "1e",
            "1ee3",
            "1e+",
            "1e-",
            "1mm",
            "1Mi3",
            "1eMi",
            "1e2147483648",
            "1e-2147483649",
            "1k1",
        ] {
            assert_eq!(parse(s), Err(SUFFIX_ERROR.to_string()), "{s:?}");
        }
    }

    #[test]
    fn quantities_without_digits_are_rejected() {
        // Kubernetes reads these as zero; podc refuses them.
        for s in ["Mi", "-", "+", ".", "-.", "+.Ki", "k", "e3"] {
            assert!(parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        for s in [
            "1e30",
            "999999999999999999999999999999999999999",
            "340282366920938463463374607431768211456",
            "1e2147483647",
            "100000000000000000000Ei",
            "170141183460469231731.687303716Ei",
            &"9".repeat(10_000),
            &format!("1{}", "0".repeat(100)),
            &format!("0.{}1", "0".repeat(100)),
        ] {
            let r = parse(s);
            if s.starts_with("0.") {
                assert_eq!(r.map(|q| q.nanos()), Ok(1), "{s:?}");
            } else {
                assert_eq!(r, Err(too_large()), "{s:?}");
            }
        }
        // Trailing zeros in the fraction and leading zeros are free.
        assert_eq!(nanos(&format!("1.{}", "0".repeat(1000))), N);
        assert_eq!(nanos(&format!("{}1", "0".repeat(1000))), N);
        assert_eq!(nanos(&format!("1{}e-100", "0".repeat(100))), N);
        // The largest representable magnitude is fine.
        assert_eq!(nanos("170141183460469231731687303715.884105727"), i128::MAX);
        assert_eq!(
            nanos("-170141183460469231731687303715.884105727"),
            -i128::MAX
        );
        assert!(parse("170141183460469231731687303715.884105728").is_err());
    }

    #[test]
    fn display_is_exact() {
        let d = |s: &str| parse(s).map(|q| q.to_string()).unwrap_or_default();
        assert_eq!(d("100m"), "0.1");
        assert_eq!(d("1.5Gi"), "1610612736");
        assert_eq!(d("1n"), "0.000000001");
        assert_eq!(d("-2.50"), "-2.5");
        assert_eq!(d("0"), "0");
    }

    #[test]
    fn from_str_matches_parse() {
        assert_eq!("64Mi".parse::<Quantity>(), parse("64Mi"));
        assert!("x".parse::<Quantity>().is_err());
    }

    #[test]
    fn random_inputs_never_panic() {
        let alphabet = b"0123456789.+-eEinumkKMGTP x";
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 16) as usize;
            let s: String = (0..len)
                .filter_map(|_| {
                    alphabet
                        .get((next() % alphabet.len() as u64) as usize)
                        .map(|&c| c as char)
                })
                .collect();
            if let Ok(q) = parse(&s) {
                // Accepted strings always contain a digit and round-trip
                // through the conversions without panicking.
                assert!(s.bytes().any(|c| c.is_ascii_digit()), "{s:?}");
                let _ = (q.to_bytes_ceil(), q.to_millis_ceil(), q.to_string());
            }
        }
    }
}
