//! Test helper: appends audit records dated N days ago to a stopped host's
//! store, for the retention e2e test. A process of its own, so the store's
//! lock is released (at exit) before the host opens the store again.
//!
//! Usage: `plugboard-e2e-backdate <store dir> <days>...`; each record is a
//! `rule.delete` of `rule_<days>d` by the system actor "backdated by the
//! test".

use std::time::{SystemTime, UNIX_EPOCH};

use plugboard::audit::{Actor, AuditKey, AuditRecord, Outcome, Resource};
use plugboard::store::{SledStore, Store as _};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: plugboard-e2e-backdate <store dir> <days>..."))?;
    let days: Vec<u64> = args.map(|d| d.parse()).collect::<Result<_, _>>()?;
    let store = SledStore::open(std::path::Path::new(&dir))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let first = store.audit_seq()?.map_or(0, |s| s + 1);
    let records: Vec<AuditRecord> = days
        .iter()
        .zip(first..)
        .map(|(days, seq)| {
            AuditRecord::new(
                AuditKey {
                    ms: now - days * 86_400_000,
                    seq,
                },
                Actor::system("backdated by the test", None),
                "rule.delete",
                Resource::new("rule", Some(&format!("rule_{days}d"))),
                Outcome::success(),
            )
        })
        .collect();
    store.append_audit(&records)?;
    Ok(())
}
