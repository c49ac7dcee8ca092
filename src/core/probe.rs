//! Port checks (`check HOST:PORT…`, like `nc -z`) and waiting for a port to
//! open (`wait-for HOST:PORT`, the scripts' `until nc -z` loop): connect,
//! close at once, report.

use std::time::Duration;

use super::addr::{HostPort, parse_host_port};
use super::error::{CoreError, CoreResult, ErrorCode};

/// Ports one `check` tries at most (`1-65535` would be a port scan of its own).
pub const MAX_PORTS: usize = 1024;
/// How long `wait-for` waits between attempts.
pub const RETRY: Duration = Duration::from_millis(200);

/// `HOST:PORT` or `HOST:LOW-HIGH` (`[::1]:20-25`).
pub fn parse_targets(text: &str) -> CoreResult<Vec<HostPort>> {
    let bad = |why: &str| CoreError::new(ErrorCode::AddressInvalid, format!("{text:?}: {why}"));
    if let Some((host, range)) = text.rsplit_once(':')
        && let Some((low, high)) = range.split_once('-')
    {
        let base = parse_host_port(&format!("{host}:{low}"))?;
        let high: u16 = high.parse().map_err(|_| bad("the range's end is not a port"))?;
        if high < base.port {
            return Err(bad("the range ends before it starts"));
        }
        let count = usize::from(high - base.port) + 1;
        if count > MAX_PORTS {
            return Err(bad(&format!("{count} ports: at most {MAX_PORTS} in one check")));
        }
        return Ok((base.port..=high)
            .map(|port| HostPort {
                host: base.host.clone(),
                port,
            })
            .collect());
    }
    Ok(vec![parse_host_port(text)?])
}

/// Connects and closes; why not, when it does not open.
pub async fn probe(target: &HostPort, timeout: Duration) -> Result<(), CoreError> {
    super::transport::tcp::connect(target, timeout).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_ranges() {
        let ports: Vec<u16> = parse_targets("127.0.0.1:20-25")
            .unwrap()
            .iter()
            .map(|t| t.port)
            .collect();
        assert_eq!(ports, [20, 21, 22, 23, 24, 25]);
        assert_eq!(parse_targets("[::1]:7000").unwrap()[0].host, "::1");
        assert_eq!(parse_targets("[::1]:1-2").unwrap().len(), 2);
        for bad in ["127.0.0.1:25-20", "127.0.0.1:1-65535", "127.0.0.1:x-3", "nohost"] {
            assert!(parse_targets(bad).is_err(), "{bad}");
        }
    }
}
