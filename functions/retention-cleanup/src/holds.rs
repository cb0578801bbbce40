//! The legal holds of a run, from the holds registry (`shared_privacy::legal_holds`): read once,
//! with one Query of a handful of items, the first time a rule needs them, then checked in
//! memory. The cost of hold checks follows the number of holds, not the number of items swept.
//!
//! Where the held item itself is read or deleted anyway, its own `legal_hold` attribute decides
//! (billing: a conditional delete; a tenant: its record is read). The registry answers only what
//! no item in hand can: whether the lead of an expiring submission is held.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use shared_core::keys;
use shared_privacy::legal_holds::{held_item_of, HoldKind};

use crate::store::QuerySpec;
use crate::Run;

/// The holds registered when the run read the registry.
#[derive(Debug, Default)]
pub struct Holds {
    /// Held leads, by their partition key (`TENANT#<t>#LEAD#<l>`, also their submissions').
    leads: BTreeSet<String>,
    /// Held billing records, by key.
    billing: BTreeSet<(String, String)>,
}

impl Holds {
    pub fn lead(&self, lead_pk: &str) -> bool {
        self.leads.contains(lead_pk)
    }

    pub fn billing(&self, key: &keys::Key) -> bool {
        self.billing.contains(&(key.pk.clone(), key.sk.clone()))
    }
}

impl Run<'_> {
    /// The registry's holds, read on first use in this run.
    pub(crate) async fn holds(&mut self) -> anyhow::Result<&Holds> {
        if self.holds.is_none() {
            let ops = self.app.tables.ops.clone();
            let spec = QuerySpec {
                table: &ops,
                index: None,
                condition: "pk = :p",
                names: vec![],
                values: vec![(
                    ":p",
                    AttributeValue::S(keys::LEGAL_HOLDS_PARTITION.to_string()),
                )],
                projection: Some("kind, item_pk, item_sk"),
            };
            let mut holds = Holds::default();
            let mut start = None;
            loop {
                let (items, next) = self.query(&spec, start).await?;
                for held in items.iter().filter_map(held_item_of) {
                    match held.kind {
                        HoldKind::Lead => {
                            holds.leads.insert(held.key.pk);
                        }
                        HoldKind::Billing => {
                            holds.billing.insert((held.key.pk, held.key.sk));
                        }
                        // A tenant's record is read by its erasure anyway: its attribute decides.
                        HoldKind::Tenant => {}
                    }
                }
                match next {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
            self.holds = Some(holds);
        }
        Ok(self.holds.get_or_insert_with(Holds::default))
    }
}
