//! The run report: counts per rule, held items, failures. Ids and counts only, never personal
//! data: it is logged as one JSON line and stored in the ops table.

use std::collections::BTreeMap;

use serde::Serialize;

/// Held items listed by id in a report (all of them are counted).
pub const MAX_LISTED_HELD: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleCounts {
    /// Items found in the rule's expiry buckets for the swept days.
    pub found: u64,
    /// Items deleted (for `tech-data`: submissions whose technical data was removed; for
    /// `tenant-erase`: tenants whose workspace was erased). A dry run: what would be.
    pub deleted: u64,
    /// Items of a tenant's workspace deleted (`tenant-erase` only).
    pub workspace_items: u64,
    /// S3 objects deleted.
    pub objects: u64,
    /// Under legal hold: kept, and carried to the next day's bucket so they are reported again.
    pub held: u64,
    /// Not due yet (a period raised after the item was written, a reactivated tenant):
    /// moved to the bucket of their real day.
    pub deferred: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldItem {
    pub rule: &'static str,
    /// `tenant`, `lead`, `billing`.
    pub kind: &'static str,
    /// The tenant id, `<tenant>/<lead>`, or `<tenant>/<billing record sort key>`.
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub rule: &'static str,
    pub day: String,
    /// The failed step (`query`, `delete`, `erase`, ...); never an item's content.
    pub step: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub run_id: String,
    /// The run's "now": the scheduled event's time.
    pub run_at: String,
    pub run_day: String,
    pub dry_run: bool,
    /// `completed`, `partial` (stopped at its time budget or after a failure; the next run
    /// continues from the checkpoint), `busy` (another run holds the lease).
    pub status: &'static str,
    /// The first and last day whose buckets were swept.
    pub days: Option<(String, String)>,
    /// Where the run started when it resumed a checkpoint (`<day>/<rule>/<shard>`).
    pub resumed_from: Option<String>,
    /// Where the next run continues, when this one did not finish.
    pub checkpoint: Option<String>,
    pub rules: BTreeMap<&'static str, RuleCounts>,
    pub held_items: Vec<HeldItem>,
    pub failures: Vec<Failure>,
    /// DynamoDB items read (the responses' ScannedCount and items returned by key).
    pub items_read: u64,
    pub queries: u64,
}

impl Report {
    pub fn rule(&mut self, rule: &'static str) -> &mut RuleCounts {
        self.rules.entry(rule).or_default()
    }

    pub fn held(&mut self, rule: &'static str, kind: &'static str, id: String) {
        self.rule(rule).held += 1;
        if self.held_items.len() < MAX_LISTED_HELD {
            self.held_items.push(HeldItem { rule, kind, id });
        }
    }

    pub fn fail(&mut self, rule: &'static str, day: String, step: &'static str) {
        self.rule(rule).failures += 1;
        self.failures.push(Failure { rule, day, step });
    }
}
