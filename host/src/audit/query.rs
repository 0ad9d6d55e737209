//! Filters and paging of `GET /v1/audit`: [`AuditQuery::parse`] checks the
//! query parameters, [`page`] reads one page, newest first.
//!
//! The time range maps to a key range (keys start with the time), so
//! `since`/`until` cost nothing beyond the records inside them. The other
//! filters are checked record by record; to bound the work of one request
//! when they match rarely, a page reads at most [`MAX_SCAN`] records and
//! may then come back short (even empty) with a `nextCursor` to continue
//! from. The cursor is the key of the last record read, so following
//! cursors visits every record of the range exactly once, whatever the
//! page sizes.

use super::record::{AuditKey, AuditRecord, actions, parse_rfc3339_ms};
use crate::store::{Store, StoreResult};

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 1000;
/// Records one page reads at most (see the module doc).
pub const MAX_SCAN: usize = 10_000;

/// Which actions match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ActionFilter {
    /// This action.
    Exact(String),
    /// Actions starting with this (it ends with a dot).
    Prefix(String),
}

/// A parsed `GET /v1/audit` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    actor: Option<String>,
    resource: Option<(String, Option<String>)>,
    action: Option<ActionFilter>,
    /// Inclusive lower bound.
    since: Option<AuditKey>,
    /// Exclusive upper bound: the lower of `until` and the cursor.
    below: Option<AuditKey>,
    limit: usize,
}

/// One page of results.
#[derive(Debug)]
pub struct Page {
    /// Matching records, newest first.
    pub items: Vec<AuditRecord>,
    /// Where the next page starts, if the range may hold more.
    pub next_cursor: Option<String>,
}

impl AuditQuery {
    /// Parses the query parameters; the error says which one is wrong and
    /// why. Unknown and repeated parameters are errors too: a misspelt
    /// filter must not silently return everything.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut q = Self {
            actor: None,
            resource: None,
            action: None,
            since: None,
            below: None,
            limit: DEFAULT_LIMIT,
        };
        let mut seen = Vec::new();
        let mut until = None;
        let mut cursor = None;
        for (name, value) in pairs {
            if seen.contains(&name) {
                return Err(format!("query parameter `{name}` is given more than once"));
            }
            seen.push(name);
            let nonempty = || {
                if value.is_empty() {
                    Err(format!("query parameter `{name}` is empty"))
                } else {
                    Ok(value.to_owned())
                }
            };
            match name {
                "actor" => q.actor = Some(nonempty()?),
                "resource" => {
                    let v = nonempty()?;
                    q.resource = Some(match v.split_once(':') {
                        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
                            (kind.to_owned(), Some(id.to_owned()))
                        }
                        Some(_) => {
                            return Err(format!(
                                "`resource` must be `type` or `type:id`, not {v:?}"
                            ));
                        }
                        None => (v, None),
                    });
                }
                "action" => q.action = Some(action_filter(value)?),
                "since" => q.since = Some(AuditKey::floor(time(name, value)?)),
                "until" => until = Some(AuditKey::floor(time(name, value)?)),
                "limit" => {
                    q.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            format!("`limit` must be a whole number from 1 to {MAX_LIMIT}, not {value:?}")
                        })?;
                }
                "cursor" => {
                    cursor =
                        Some(AuditKey::from_hex(value).ok_or_else(|| {
                            "`cursor` is not one this endpoint returned".to_owned()
                        })?);
                }
                other => {
                    return Err(format!(
                        "unknown query parameter `{other}`; filters are actor, resource, action, since, until, limit, cursor"
                    ));
                }
            }
        }
        if let (Some(since), Some(until)) = (q.since, until)
            && since >= until
        {
            return Err("`since` must be before `until`".into());
        }
        q.below = match (until, cursor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(q)
    }

    /// Whether a record passes the non-time filters.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        if let Some(actor) = &self.actor
            && r.actor.id.as_deref() != Some(actor.as_str())
            && r.actor.kind.as_str() != actor
        {
            return false;
        }
        if let Some((kind, id)) = &self.resource
            && (r.resource.kind != *kind
                || id
                    .as_ref()
                    .is_some_and(|id| r.resource.id.as_ref() != Some(id)))
        {
            return false;
        }
        match &self.action {
            Some(ActionFilter::Exact(a)) => r.action == *a,
            Some(ActionFilter::Prefix(p)) => r.action.starts_with(p.as_str()),
            None => true,
        }
    }
}

fn time(name: &str, value: &str) -> Result<u64, String> {
    parse_rfc3339_ms(value).ok_or_else(|| {
        format!("`{name}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z, not {value:?}")
    })
}

/// `instance.create` (one of [`actions::ALL`]) or `instance.*` (a prefix
/// of at least one).
fn action_filter(value: &str) -> Result<ActionFilter, String> {
    if let Some(prefix) = value.strip_suffix('*') {
        if prefix.ends_with('.')
            && !prefix.contains('*')
            && actions::ALL.iter().any(|a| a.starts_with(prefix))
        {
            return Ok(ActionFilter::Prefix(prefix.to_owned()));
        }
        return Err(format!(
            "`action` {value:?} is not a known prefix followed by `.*` (e.g. `instance.*`)"
        ));
    }
    if actions::ALL.contains(&value) {
        Ok(ActionFilter::Exact(value.to_owned()))
    } else {
        Err(format!(
            "unknown `action` {value:?}; actions are {}",
            actions::ALL.join(", ")
        ))
    }
}

/// Reads one page of `query` (see the module doc).
pub fn page(store: &dyn Store, query: &AuditQuery) -> StoreResult<Page> {
    let mut items = Vec::new();
    let mut scanned = 0;
    let mut last_read = None;
    // One look-ahead record past `limit` tells whether another page exists.
    let mut more = false;
    store.scan_audit(query.since, query.below, &mut |record| {
        if query.matches(&record) {
            if items.len() == query.limit {
                more = true;
                return false;
            }
            items.push(record);
        } else {
            last_read = Some(record.key);
        }
        scanned += 1;
        if scanned >= MAX_SCAN {
            more = true;
            return false;
        }
        true
    })?;
    let next_cursor = more.then(|| {
        // Continue below whatever was read last: the last item, or a
        // non-matching record read after it.
        let last_item = items.last().map(|r| r.key);
        match (last_item, last_read) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or_default(),
        }
        .to_hex()
    });
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{Actor, Outcome, Resource};

    fn q(s: &str) -> Result<AuditQuery, String> {
        AuditQuery::parse(
            s.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, ""))),
        )
    }

    fn record(seq: u64, actor: &str, action: &str, kind: &str, id: &str) -> AuditRecord {
        AuditRecord::new(
            AuditKey {
                ms: 1_767_225_600_000 + seq * 1000,
                seq,
            },
            Actor {
                kind: super::super::record::ActorKind::Token,
                id: Some(actor.into()),
                name: None,
            },
            action,
            Resource::new(kind, Some(id)),
            Outcome::success(),
        )
    }

    #[test]
    fn filters_parse_and_match() {
        let r = record(1, "tok_a", "instance.oauth.start", "instance", "inst_1");
        let yes = [
            "",
            "actor=tok_a",
            "actor=token",
            "resource=instance",
            "resource=instance:inst_1",
            "action=instance.oauth.start",
            "action=instance.*",
            "action=instance.oauth.*",
            "actor=tok_a&resource=instance&action=instance.*&limit=5",
        ];
        for s in yes {
            assert!(q(s).unwrap().matches(&r), "{s}");
        }
        let no = [
            "actor=tok_b",
            "actor=system",
            "resource=connector",
            "resource=instance:inst_2",
            "action=instance.create",
            "action=token.*",
        ];
        for s in no {
            assert!(!q(s).unwrap().matches(&r), "{s}");
        }
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        let cases = [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("since=yesterday", "since"),
            ("until=2026-13-01T00:00:00Z", "until"),
            (
                "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
                "before",
            ),
            ("action=instance.crate", "unknown `action`"),
            ("action=inst*", "prefix"),
            ("action=nothing.*", "prefix"),
            ("action=*", "prefix"),
            ("resource=:x", "resource"),
            ("resource=instance:", "resource"),
            ("actor=", "empty"),
            ("cursor=abc", "cursor"),
            ("actr=tok_a", "unknown query parameter `actr`"),
            ("limit=1&limit=2", "more than once"),
        ];
        for (s, want) in cases {
            let e = q(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    /// A store with `n` records, one per second, alternating actors.
    fn store_with(n: u64) -> (crate::store::SledStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "pb-audit-query-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let store = crate::store::SledStore::open(&dir).unwrap();
        let records: Vec<AuditRecord> = (0..n)
            .map(|i| {
                let actor = if i % 3 == 0 { "tok_a" } else { "tok_b" };
                record(i, actor, "rule.create", "rule", &format!("rule_{i}"))
            })
            .collect();
        store.append_audit(&records).unwrap();
        (store, dir)
    }

    fn walk(store: &dyn Store, filters: &str, limit: usize) -> (Vec<u64>, usize) {
        let mut seqs = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut s = format!("limit={limit}");
            if !filters.is_empty() {
                s.push('&');
                s.push_str(filters);
            }
            if let Some(c) = &cursor {
                s.push_str(&format!("&cursor={c}"));
            }
            let p = page(store, &q(&s).unwrap()).unwrap();
            pages += 1;
            assert!(p.items.len() <= limit);
            seqs.extend(p.items.iter().map(|r| r.key.seq));
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        (seqs, pages)
    }

    #[test]
    fn a_cursor_walk_returns_every_record_once_newest_first() {
        let (store, dir) = store_with(25);
        let all: Vec<u64> = (0..25).rev().collect();
        for limit in [1, 4, 5, 25, 100] {
            let (seqs, pages) = walk(&store, "", limit);
            assert_eq!(seqs, all, "limit {limit}");
            // Exact pages: the look-ahead ends the walk without an empty page.
            assert_eq!(pages, 25usize.div_ceil(limit), "limit {limit}");
        }
        let (seqs, _) = walk(&store, "actor=tok_a", 2);
        let want: Vec<u64> = (0..25).rev().filter(|i| i % 3 == 0).collect();
        assert_eq!(seqs, want);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn time_ranges_are_key_ranges() {
        let (store, dir) = store_with(10);
        // Record i is at 2026-01-01T00:00:0i.000Z.
        let since = "since=2026-01-01T00:00:03Z&until=2026-01-01T00:00:07Z";
        let (seqs, _) = walk(&store, since, 100);
        assert_eq!(seqs, [6, 5, 4, 3], "since inclusive, until exclusive");
        let (seqs, _) = walk(&store, &format!("{since}&actor=tok_a"), 1);
        assert_eq!(seqs, [6, 3]);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rare_matches_page_through_the_scan_budget() {
        let n = (MAX_SCAN as u64) * 2 + 10;
        let dir = std::env::temp_dir().join(format!(
            "pb-audit-scan-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let store = crate::store::SledStore::open(&dir).unwrap();
        // Only the oldest record matches.
        let records: Vec<AuditRecord> = (0..n)
            .map(|i| {
                let actor = if i == 0 { "tok_rare" } else { "tok_common" };
                record(i, actor, "rule.delete", "rule", "rule_x")
            })
            .collect();
        store.append_audit(&records).unwrap();
        let (seqs, pages) = walk(&store, "actor=tok_rare", 10);
        assert_eq!(seqs, [0]);
        assert_eq!(pages, 3, "two budget-limited pages, then the match");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
