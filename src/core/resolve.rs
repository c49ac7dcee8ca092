//! The one resolver of session and listener references (CONTRACT section
//! 2): a full id, a `--label`, a unique prefix of the id's uuid (4+ hex
//! digits, with or without `sess-`/`lstn-`), or `@N`, the N-th still-open
//! one in opening order. Every front end's references reach it through the
//! session manager's commands, so `view @2 hex` in the TUI names the same
//! session as in a script.

use std::sync::Arc;

use super::error::{CoreError, CoreResult, ErrorCode};

/// What is being resolved: its id prefix and how errors call it.
pub struct Kind {
    pub prefix: &'static str,
    pub name: &'static str,
    /// `@N` counts these.
    pub open_name: &'static str,
}

pub const SESSIONS: Kind = Kind {
    prefix: "sess",
    name: "session",
    open_name: "live session",
};

pub const LISTENERS: Kind = Kind {
    prefix: "lstn",
    name: "listener",
    open_name: "open listener",
};

/// Resolves `r` among `items` (in opening order); `key` gives an item's
/// id, label and whether it is still open.
pub fn resolve<T>(
    items: &[Arc<T>],
    r: &str,
    kind: &Kind,
    key: impl Fn(&T) -> (&String, &Option<String>, bool),
) -> CoreResult<Arc<T>> {
    if let Some(n) = r.strip_prefix('@') {
        return by_position(items, r, n, kind, |i| key(i).2);
    }
    let found = find_by_ref(items, r, kind.prefix, |i| {
        let (id, label, _) = key(i);
        (id, label)
    });
    match found.len() {
        1 => Ok(found[0].clone()),
        0 => Err(CoreError::new(
            ErrorCode::SessionNotFound,
            format!("no {} matches {r:?}", kind.name),
        )),
        n => Err(CoreError::new(
            ErrorCode::SessionAmbiguous,
            format!("{n} {}s match {r:?}: give more of the id", kind.name),
        )),
    }
}

/// `@N`: the N-th (from 1) of the items that are still open.
fn by_position<T>(
    items: &[Arc<T>],
    r: &str,
    n: &str,
    kind: &Kind,
    open: impl Fn(&T) -> bool,
) -> CoreResult<Arc<T>> {
    let n: usize = n.parse().map_err(|_| {
        CoreError::new(
            ErrorCode::SessionNotFound,
            format!("{r:?}: @N takes a number from 1"),
        )
    })?;
    items
        .iter()
        .filter(|i| open(i))
        .nth(n.wrapping_sub(1))
        .cloned()
        .ok_or_else(|| {
            CoreError::new(
                ErrorCode::SessionNotFound,
                format!("there is no {} {r}", kind.open_name),
            )
        })
}

/// Exact id, then label, then unique prefix of the uuid part.
fn find_by_ref<T>(
    items: &[Arc<T>],
    r: &str,
    prefix: &str,
    key: impl Fn(&T) -> (&String, &Option<String>),
) -> Vec<Arc<T>> {
    if let Some(hit) = items.iter().find(|i| key(i).0 == r) {
        return vec![hit.clone()];
    }
    let by_label: Vec<_> = items
        .iter()
        .filter(|i| key(i).1.as_deref() == Some(r))
        .cloned()
        .collect();
    if !by_label.is_empty() {
        return by_label;
    }
    let stem = r.strip_prefix(&format!("{prefix}-")).unwrap_or(r);
    let hexish = stem.len() >= 4 && stem.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if !hexish {
        return Vec::new();
    }
    let full = format!("{prefix}-{}", stem.to_ascii_lowercase());
    items
        .iter()
        .filter(|i| key(i).0.starts_with(&full))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item {
        id: String,
        label: Option<String>,
        open: bool,
    }

    fn items() -> Vec<Arc<Item>> {
        [
            ("sess-aaaa1111-0000", Some("dev"), true),
            ("sess-aaaa2222-0000", None, false),
            ("sess-bbbb3333-0000", None, true),
        ]
        .into_iter()
        .map(|(id, label, open)| {
            Arc::new(Item {
                id: id.to_string(),
                label: label.map(str::to_string),
                open,
            })
        })
        .collect()
    }

    fn find(r: &str) -> CoreResult<String> {
        resolve(&items(), r, &SESSIONS, |i| (&i.id, &i.label, i.open)).map(|i| i.id.clone())
    }

    #[test]
    fn ids_labels_prefixes_and_positions() {
        assert_eq!(find("sess-aaaa1111-0000").unwrap(), "sess-aaaa1111-0000");
        assert_eq!(find("dev").unwrap(), "sess-aaaa1111-0000");
        assert_eq!(find("bbbb").unwrap(), "sess-bbbb3333-0000");
        assert_eq!(find("sess-AAAA2").unwrap(), "sess-aaaa2222-0000");
        // @N counts open ones only.
        assert_eq!(find("@2").unwrap(), "sess-bbbb3333-0000");
        assert_eq!(find("aaaa").unwrap_err().code, ErrorCode::SessionAmbiguous);
        assert_eq!(find("@3").unwrap_err().code, ErrorCode::SessionNotFound);
        assert_eq!(find("@x").unwrap_err().code, ErrorCode::SessionNotFound);
        assert_eq!(find("abc").unwrap_err().code, ErrorCode::SessionNotFound);
    }
}
