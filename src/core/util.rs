//! Small helpers with no dependencies: ids, durations as people write
//! them, and the once-a-second throttle of repeated reports.

use std::time::Duration;

/// For reports that a storm would repeat: true at most once a second
/// (`last`: when the previous report went out, updated when this one may).
pub(crate) fn once_a_second(last: &mut Option<tokio::time::Instant>) -> bool {
    let now = tokio::time::Instant::now();
    let due = last.is_none_or(|t| now - t >= std::time::Duration::from_secs(1));
    if due {
        *last = Some(now);
    }
    due
}

/// `sess-<uuid v4>` / `lstn-<uuid v4>`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// `1.5s`, `500ms`, `2m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) && ms >= 1000 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}
