//! Reconnecting (`connect --reconnect`): the dialer to use again and the
//! backoff between attempts.

use std::time::Duration;

use bytes::Bytes;

use super::transport::Dialer;

/// `connect --reconnect`: how to get the connection back.
pub(crate) struct Redial {
    pub dialer: Dialer,
    pub backoff: Backoff,
    /// Sent after every (re)connect, EOL included in line mode.
    pub preamble: Option<Bytes>,
}

/// Exponential backoff with jitter between `min` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// The shortest `--backoff` minimum: anything less would hammer a peer
/// that refuses at once.
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);

impl Backoff {
    /// Parses `500ms..30s` (or one duration for a fixed delay).
    pub fn parse(text: &str, duration: impl Fn(&str) -> Result<Duration, String>) -> Result<Backoff, String> {
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (duration(a)?, duration(b)?),
            None => {
                let d = duration(text)?;
                (d, d)
            }
        };
        if min < MIN_BACKOFF {
            return Err(format!("{text:?}: the shortest delay must be at least 10ms"));
        }
        if max < min {
            return Err(format!(
                "{text:?}: the longest delay is shorter than the shortest"
            ));
        }
        Ok(Backoff { min, max })
    }

    /// The delay before attempt `n` (1-based): `min × 2^(n-1)` capped at
    /// `max`, then a random half of it taken off ("equal jitter"), so
    /// clients that lost the same peer do not come back in lockstep.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doubled = self.min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let base = doubled.min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter / 2.0).max(self.min.min(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            min: ms(500),
            max: ms(30_000),
        };
        let plain: Vec<_> = (1..=9).map(|n| b.delay(n, 0.0)).collect();
        assert_eq!(
            plain,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000].map(ms)
        );
        // Full jitter takes off at most half, never below the minimum.
        assert_eq!(b.delay(4, 1.0), ms(2000));
        assert_eq!(b.delay(1, 1.0), ms(500));
        assert_eq!(b.delay(1000, 0.0), ms(30_000));
    }

    #[test]
    fn backoff_parses_ranges_and_rejects_nonsense() {
        // `Nms` or `Ns`, as the command language writes them.
        let d = |t: &str| match t.strip_suffix("ms") {
            Some(n) => n.parse().map(ms).map_err(|_| t.to_string()),
            None => t
                .strip_suffix('s')
                .and_then(|n| n.parse().ok())
                .map(Duration::from_secs)
                .ok_or_else(|| t.to_string()),
        };
        assert_eq!(
            Backoff::parse("100ms..2s", d),
            Ok(Backoff {
                min: ms(100),
                max: ms(2000)
            })
        );
        assert_eq!(
            Backoff::parse("1s", d).map(|b| (b.min, b.max)),
            Ok((ms(1000), ms(1000)))
        );
        assert!(
            Backoff::parse("0ms..1s", d)
                .unwrap_err()
                .contains("at least 10ms")
        );
        assert!(Backoff::parse("5s..1s", d).unwrap_err().contains("shorter"));
        assert!(Backoff::parse("soon..later", d).is_err());
    }
}
