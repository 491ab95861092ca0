//! Time quantities of NTP: wire timestamps, short-format values, signed durations and poll
//! exponents.
//!
//! The 64-bit NTP timestamp on the wire carries no era: its seconds field wraps every 2^32 s
//! (the first wrap is 2036-02-07 06:28:16 UTC). RFC 5905 §6 resolves a wire timestamp by
//! choosing the era that puts it closest to a known time, the *pivot* — normally the local
//! clock. All era arithmetic lives in two places: [`NtpTimestamp`] minus [`NtpTimestamp`]
//! (wrapping 64-bit subtraction read as signed, correct for spans under 68 years) and
//! [`NtpTimestamp::to_unix`].

use core::fmt;
use core::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// Seconds from the NTP prime epoch (1900-01-01 00:00 UTC) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET: i64 = 2_208_988_800;

/// 2^32 as a float, the scale of the 32.32 fixed-point formats.
const TWO_POW_32: f64 = 4_294_967_296.0;

/// A point in time as the Unix clock sees it: seconds and nanoseconds since 1970-01-01 UTC.
///
/// `nanos` is always below 1e9; negative times have negative `secs` and positive `nanos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime {
    secs: i64,
    nanos: u32,
}

impl UnixTime {
    /// The Unix epoch.
    pub const EPOCH: Self = Self { secs: 0, nanos: 0 };

    /// Builds a time from seconds and nanoseconds, carrying nanoseconds ≥ 1e9 into seconds.
    pub const fn new(secs: i64, nanos: u32) -> Self {
        Self {
            secs: secs.saturating_add((nanos / 1_000_000_000) as i64),
            nanos: nanos % 1_000_000_000,
        }
    }

    /// Whole seconds since the Unix epoch (floor).
    pub const fn secs(self) -> i64 {
        self.secs
    }

    /// Nanoseconds past [`Self::secs`], below 1e9.
    pub const fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Seconds since the Unix epoch as a float (for display and statistics only).
    #[expect(clippy::cast_precision_loss, reason = "display precision is enough")]
    pub fn as_seconds_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) * 1e-9
    }

    /// This time moved by a signed duration, saturating at the ends of the range.
    pub fn add_duration(self, d: NtpDuration) -> Self {
        let total = i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos) + d.as_nanos();
        Self::from_total_nanos(total)
    }

    /// The signed duration from `earlier` to `self`, saturating.
    pub fn duration_since(self, earlier: Self) -> NtpDuration {
        let a = i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos);
        let b = i128::from(earlier.secs) * 1_000_000_000 + i128::from(earlier.nanos);
        NtpDuration::from_nanos_i128(a - b)
    }

    fn from_total_nanos(total: i128) -> Self {
        let secs = total.div_euclid(1_000_000_000);
        let nanos = total.rem_euclid(1_000_000_000);
        let secs = i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX });
        // rem_euclid by 1e9 is always in 0..1e9, which fits a u32.
        Self {
            secs,
            nanos: u32::try_from(nanos).unwrap_or(0),
        }
    }
}

/// A 64-bit NTP timestamp as carried on the wire: 32 bits of seconds and 32 bits of fraction
/// since the start of *some* era (RFC 5905 §6).
///
/// Subtracting two timestamps gives an [`NtpDuration`] that is correct whatever eras they are
/// in, as long as they are less than 68 years apart. [`Self::to_unix`] resolves the era.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(u64);

impl NtpTimestamp {
    /// The all-zero timestamp, which NTP uses to mean "unknown" or "never".
    pub const ZERO: Self = Self(0);

    /// A timestamp from its 64-bit wire value.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The 64-bit wire value.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// A timestamp from its seconds and fraction fields.
    pub const fn from_parts(seconds: u32, fraction: u32) -> Self {
        Self(((seconds as u64) << 32) | fraction as u64)
    }

    /// The seconds field (seconds into the era).
    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The fraction field, in units of 2^-32 s.
    pub const fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// Whether this is the all-zero timestamp.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The wire timestamp of a Unix time. The era is dropped, as on the wire.
    pub fn from_unix(t: UnixTime) -> Self {
        let ntp_secs = t.secs.wrapping_add(NTP_UNIX_OFFSET);
        // Keep only the seconds within the era: the low 32 bits.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "era wrap"
        )]
        let secs = ntp_secs as u32;
        Self::from_parts(secs, nanos_to_fraction(t.nanos))
    }

    /// The Unix time of this timestamp in the era that puts it closest to `pivot`.
    ///
    /// With the local clock as the pivot this is RFC 5905 §6's rule; it is right for any
    /// timestamp within 68 years of the pivot, on either side of an era boundary.
    pub fn to_unix(self, pivot: UnixTime) -> UnixTime {
        let offset = self - Self::from_unix(pivot);
        // The pivot's own fraction was rounded when it became a timestamp; start from the
        // timestamp's exact value so the result does not depend on that rounding.
        let pivot_rounded = UnixTime::new(pivot.secs, 0).add_duration(NtpDuration::from_bits(
            i64::from(nanos_to_fraction(pivot.nanos)),
        ));
        pivot_rounded.add_duration(offset)
    }
}

impl fmt::Debug for NtpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NtpTimestamp({:08x}.{:08x})",
            self.seconds(),
            self.fraction()
        )
    }
}

impl fmt::Display for NtpTimestamp {
    /// The form ntpq and ntpd print: `0xSSSSSSSS.FFFFFFFF` without the prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}.{:08x}", self.seconds(), self.fraction())
    }
}

impl Sub for NtpTimestamp {
    type Output = NtpDuration;

    /// The signed time from `rhs` to `self`, across era boundaries (spans below 68 years).
    fn sub(self, rhs: Self) -> NtpDuration {
        #[expect(
            clippy::cast_possible_wrap,
            reason = "two's complement is the era rule"
        )]
        NtpDuration(self.0.wrapping_sub(rhs.0) as i64)
    }
}

impl Add<NtpDuration> for NtpTimestamp {
    type Output = Self;

    fn add(self, rhs: NtpDuration) -> Self {
        #[expect(clippy::cast_sign_loss, reason = "two's complement is the era rule")]
        Self(self.0.wrapping_add(rhs.0 as u64))
    }
}

impl Sub<NtpDuration> for NtpTimestamp {
    type Output = Self;

    fn sub(self, rhs: NtpDuration) -> Self {
        #[expect(clippy::cast_sign_loss, reason = "two's complement is the era rule")]
        Self(self.0.wrapping_sub(rhs.0 as u64))
    }
}

/// A signed span of time in NTP's 32.32 fixed point (about ±68 years, resolution 2^-32 s).
///
/// Arithmetic saturates instead of wrapping: a duration never silently changes sign.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpDuration(i64);

impl NtpDuration {
    /// No time at all.
    pub const ZERO: Self = Self(0);
    /// The largest representable duration (about 68 years).
    pub const MAX: Self = Self(i64::MAX);
    /// The most negative representable duration.
    pub const MIN: Self = Self(i64::MIN);
    /// One second.
    pub const ONE_SECOND: Self = Self(1 << 32);

    /// A duration from its 32.32 fixed-point bits.
    pub const fn from_bits(bits: i64) -> Self {
        Self(bits)
    }

    /// The 32.32 fixed-point bits.
    pub const fn to_bits(self) -> i64 {
        self.0
    }

    /// Whole seconds.
    pub const fn from_seconds(secs: i32) -> Self {
        Self((secs as i64) << 32)
    }

    /// A duration from seconds as a float, rounded to the nearest 2^-32 s; saturates at the
    /// ends of the range and maps NaN to zero.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "saturating float cast is intended"
    )]
    pub fn from_seconds_f64(secs: f64) -> Self {
        if secs.is_nan() {
            return Self::ZERO;
        }
        Self((secs * TWO_POW_32).round() as i64)
    }

    /// Seconds as a float.
    #[expect(
        clippy::cast_precision_loss,
        reason = "f64 keeps 53 bits, well below 1 ns"
    )]
    pub fn to_seconds_f64(self) -> f64 {
        self.0 as f64 / TWO_POW_32
    }

    /// A duration from nanoseconds, saturating.
    pub fn from_nanos(nanos: i64) -> Self {
        Self::from_nanos_i128(i128::from(nanos))
    }

    /// Nanoseconds, rounded to nearest.
    pub fn as_nanos(self) -> i128 {
        let scaled = i128::from(self.0) * 1_000_000_000;
        // Round half away from zero.
        let half = 1_i128 << 31;
        if scaled >= 0 {
            (scaled + half) >> 32
        } else {
            -((-scaled + half) >> 32)
        }
    }

    fn from_nanos_i128(nanos: i128) -> Self {
        let scaled = (nanos << 32) / 1_000_000_000;
        Self(i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX }))
    }

    /// The absolute value, saturating at [`Self::MAX`].
    pub const fn abs(self) -> Self {
        Self(self.0.saturating_abs())
    }

    /// Whether the duration is negative.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The short (16.16, unsigned) form used for root delay and dispersion: negative values
    /// become zero, values of 65536 s and more saturate.
    pub fn to_short(self) -> NtpShort {
        if self.0 <= 0 {
            return NtpShort(0);
        }
        // Round to nearest 2^-16 s.
        let v = (self.0 + (1 << 15)) >> 16;
        NtpShort(u32::try_from(v).unwrap_or(u32::MAX))
    }
}

impl fmt::Debug for NtpDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9}s", self.to_seconds_f64())
    }
}

impl Add for NtpDuration {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for NtpDuration {
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl Sub for NtpDuration {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0.saturating_sub(rhs.0))
    }
}

impl SubAssign for NtpDuration {
    fn sub_assign(&mut self, rhs: Self) {
        *self = *self - rhs;
    }
}

impl Neg for NtpDuration {
    type Output = Self;
    fn neg(self) -> Self {
        Self(self.0.saturating_neg())
    }
}

/// The NTP short format: unsigned 16.16 seconds, used for root delay and root dispersion.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpShort(u32);

impl NtpShort {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// A value from its 32-bit wire form.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The 32-bit wire form.
    pub const fn to_bits(self) -> u32 {
        self.0
    }

    /// The value as a duration (exact).
    pub const fn to_duration(self) -> NtpDuration {
        NtpDuration((self.0 as i64) << 16)
    }

    /// Seconds as a float.
    pub fn to_seconds_f64(self) -> f64 {
        f64::from(self.0) / 65536.0
    }
}

impl fmt::Debug for NtpShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.to_seconds_f64())
    }
}

/// A poll interval or precision as NTP carries it: a signed power of two, in log2 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Log2Seconds(i8);

impl Log2Seconds {
    /// A value from its exponent.
    pub const fn new(exponent: i8) -> Self {
        Self(exponent)
    }

    /// The exponent.
    pub const fn exponent(self) -> i8 {
        self.0
    }

    /// 2^exponent seconds.
    pub fn as_seconds_f64(self) -> f64 {
        2f64.powi(i32::from(self.0))
    }

    /// 2^exponent seconds as a duration (saturating for exponents of 31 and more).
    pub fn as_duration(self) -> NtpDuration {
        let shift = i32::from(self.0) + 32;
        match shift {
            s if s <= 0 => NtpDuration::ZERO,
            s if s >= 63 => NtpDuration::MAX,
            s => NtpDuration(1_i64 << s),
        }
    }

    /// The exponent whose power of two is closest to `secs` from above (for precision).
    #[expect(
        clippy::cast_possible_truncation,
        reason = "clamped to the i8 range first"
    )]
    pub fn ceil_from_seconds(secs: f64) -> Self {
        if secs.is_nan() || secs <= 0.0 {
            return Self(i8::MIN);
        }
        Self(
            secs.log2()
                .ceil()
                .clamp(f64::from(i8::MIN), f64::from(i8::MAX)) as i8,
        )
    }
}

/// A reading of a monotonic clock: time since an arbitrary origin (the daemon's start, or the
/// start of a simulation). Timers are scheduled in monotonic time so that a clock step never
/// makes a poll fire early or late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(core::time::Duration);

impl MonoTime {
    /// The origin.
    pub const ZERO: Self = Self(core::time::Duration::ZERO);

    /// A reading `since` the origin.
    pub const fn from_duration(since: core::time::Duration) -> Self {
        Self(since)
    }

    /// Time since the origin.
    pub const fn as_duration(self) -> core::time::Duration {
        self.0
    }

    /// Seconds since the origin, as a float.
    pub fn as_seconds_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> core::time::Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<core::time::Duration> for MonoTime {
    type Output = Self;
    fn add(self, rhs: core::time::Duration) -> Self {
        Self(self.0.saturating_add(rhs))
    }
}

/// Nanoseconds (below 1e9) to a 32-bit fraction, rounded to nearest. Rounding to nearest both
/// ways makes nanoseconds → fraction → nanoseconds exact, since 2^-32 s is finer than 1 ns.
fn nanos_to_fraction(nanos: u32) -> u32 {
    let v = ((u64::from(nanos) << 32) + 500_000_000) / 1_000_000_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A 32-bit fraction to nanoseconds, rounded to nearest.
pub fn fraction_to_nanos(fraction: u32) -> u32 {
    let v = (u64::from(fraction) * 1_000_000_000 + (1 << 31)) >> 32;
    // At most 1e9 for fractions just below 1 s; keep it in range.
    u32::try_from(v.min(999_999_999)).unwrap_or(999_999_999)
}

/// A frequency offset or tolerance in parts per million.
///
/// Frequencies come in two units — PPM (`tinker freq`, the drift file, the discipline's
/// parameters) and a plain ratio (`driftfile … 1e-7`, `nonvolatile`, what the discipline
/// computes in) — so one type stops them being mixed up. Always finite.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Ppm(f64);

impl Ppm {
    /// Zero.
    pub const ZERO: Self = Self(0.0);

    /// A value in PPM; `None` for NaN or infinity.
    pub fn new(ppm: f64) -> Option<Self> {
        ppm.is_finite().then_some(Self(ppm))
    }

    /// A value given as a ratio (1e-6 is one PPM); `None` for NaN or infinity.
    pub fn from_ratio(ratio: f64) -> Option<Self> {
        Self::new(ratio * 1e6)
    }

    /// The value in PPM.
    pub fn value(self) -> f64 {
        self.0
    }

    /// The value as a ratio (PPM × 1e-6), the unit the clock discipline computes in.
    pub fn as_ratio(self) -> f64 {
        self.0 * 1e-6
    }

    /// For constants.
    ///
    /// # Panics
    ///
    /// If `ppm` is not finite (at compile time, in a constant).
    pub const fn from_const(ppm: f64) -> Self {
        assert!(ppm.is_finite(), "a frequency must be finite");
        Self(ppm)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::property;

    /// 2036-02-07 06:28:16 UTC, the first NTP era boundary, in Unix seconds.
    const ERA1_UNIX: i64 = (1_i64 << 32) - NTP_UNIX_OFFSET;

    #[test]
    fn unix_epoch_is_ntp_2208988800() {
        let ts = NtpTimestamp::from_unix(UnixTime::EPOCH);
        assert_eq!(ts.seconds(), 2_208_988_800);
        assert_eq!(ts.fraction(), 0);
    }

    #[test]
    fn era_boundary_wraps_to_zero_seconds() {
        let ts = NtpTimestamp::from_unix(UnixTime::new(ERA1_UNIX, 0));
        assert_eq!(ts.to_bits(), 0);
        let back = ts.to_unix(UnixTime::new(ERA1_UNIX - 100, 0));
        assert_eq!(back, UnixTime::new(ERA1_UNIX, 0));
    }

    #[test]
    fn half_second_is_half_the_fraction_range() {
        let ts = NtpTimestamp::from_unix(UnixTime::new(0, 500_000_000));
        assert_eq!(ts.fraction(), 1 << 31);
    }

    #[test]
    fn short_format_rounds_and_saturates() {
        assert_eq!(
            NtpDuration::from_seconds_f64(1.5).to_short().to_bits(),
            0x0001_8000
        );
        assert_eq!(
            NtpDuration::from_seconds_f64(-1.0).to_short(),
            NtpShort::ZERO
        );
        assert_eq!(
            NtpDuration::from_seconds(70_000).to_short().to_bits(),
            u32::MAX
        );
    }

    #[test]
    fn log2_precision_of_a_microsecond_is_minus_19() {
        assert_eq!(Log2Seconds::ceil_from_seconds(1e-6).exponent(), -19);
        assert!((Log2Seconds::new(6).as_seconds_f64() - 64.0).abs() < 1e-12);
    }

    #[test]
    fn duration_display_is_seconds() {
        assert_eq!(
            format!("{:?}", NtpDuration::from_seconds(2)),
            "2.000000000s"
        );
    }

    fn unix_time() -> impl Strategy<Value = UnixTime> {
        // 1900 .. 2200, which covers eras 0, 1 and 2.
        (-NTP_UNIX_OFFSET..7_258_118_400_i64, 0u32..1_000_000_000)
            .prop_map(|(s, n)| UnixTime::new(s, n))
    }

    #[test]
    fn unix_round_trip_is_exact_near_the_pivot() {
        let strategy = (unix_time(), -2_000_000_000_i64..2_000_000_000);
        let checked = property::run(strategy, |(t, skew)| {
            let pivot = UnixTime::new(t.secs().saturating_add(skew), 0);
            prop_assert_eq!(NtpTimestamp::from_unix(t).to_unix(pivot), t);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn difference_across_eras_matches_unix_difference() {
        let strategy = (
            unix_time(),
            -2_000_000_000_i64..2_000_000_000,
            0u32..1_000_000_000,
        );
        let checked = property::run(strategy, |(a, span, nanos)| {
            let b = UnixTime::new(a.secs().saturating_add(span), nanos);
            let d = NtpTimestamp::from_unix(b) - NtpTimestamp::from_unix(a);
            let expected = b.duration_since(a);
            // Both sides round to 2^-32 s once; allow two units.
            prop_assert!(
                (d.to_bits() - expected.to_bits()).abs() <= 2,
                "{d:?} vs {expected:?}"
            );
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn differences_straddling_2036_are_small() {
        let checked = property::run((1u32..1_000_000, 0u32..1_000_000), |(before, after)| {
            let a = UnixTime::new(ERA1_UNIX - i64::from(before), 0);
            let b = UnixTime::new(ERA1_UNIX + i64::from(after), 0);
            let d = NtpTimestamp::from_unix(b) - NtpTimestamp::from_unix(a);
            prop_assert_eq!(
                d,
                NtpDuration::from_seconds(i32::try_from(before + after).unwrap())
            );
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn adding_a_difference_gets_back() {
        let checked = property::run((any::<u64>(), any::<u64>()), |(a, b)| {
            let (a, b) = (NtpTimestamp::from_bits(a), NtpTimestamp::from_bits(b));
            prop_assert_eq!(a + (b - a), b);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn nanos_fraction_round_trip() {
        let checked = property::run(0u32..1_000_000_000, |n| {
            prop_assert_eq!(fraction_to_nanos(nanos_to_fraction(n)), n);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn float_seconds_round_trip() {
        let checked = property::run(-1.0e6f64..1.0e6, |s| {
            let d = NtpDuration::from_seconds_f64(s);
            prop_assert!((d.to_seconds_f64() - s).abs() < 1e-9);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn nanos_round_trip() {
        let checked = property::run(-1_000_000_000_000_i64..1_000_000_000_000, |n| {
            let d = NtpDuration::from_nanos(n);
            prop_assert!((d.as_nanos() - i128::from(n)).abs() <= 1);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }
}
